from datagems.actors.base import Slots


def test_the_in_flight_level_halves_when_the_gateway_struggles_and_climbs_back() -> None:
    slots = Slots(16)
    slots.congested()
    assert slots.level == 8
    slots.congested()  # within the same second: one cut only
    assert slots.level == 8
    taken = [slots.try_acquire() for _ in range(10)]
    assert taken.count(True) == 8

    for _ in range(400):
        slots.succeeded()
    assert slots.level == 16


def test_slots_never_go_below_one_or_above_the_cap() -> None:
    slots = Slots(2)
    for _ in range(5):
        slots._last_cut = 0.0
        slots.congested()
    assert slots.level == 1
    assert slots.try_acquire() and not slots.try_acquire()
    slots.release()
    assert slots.wait_idle(0.1)
