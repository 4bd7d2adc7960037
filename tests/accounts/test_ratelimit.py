"""Sliding windows shared by replicas through CStore, and the login throttle."""

from __future__ import annotations

from pathlib import Path

import pytest

from datagems.accounts.ratelimit import LoginThrottle, WindowLimiter, rate_limit_hkey
from datagems.errors import RateLimited
from datagems.store.embedded import SqliteCStore

T0 = 1_800_000_000.0


def limiter(
    cstore: SqliteCStore, peer: str, *, window: float = 60, max_hits: int = 3
) -> WindowLimiter:
    return WindowLimiter(
        cstore, scope="register-ip", peer_id=peer, window_seconds=window, max_hits=max_hits
    )


def test_hits_up_to_the_limit_pass_and_the_next_is_limited(cstore: SqliteCStore) -> None:
    one = limiter(cstore, "peer-a")
    for second in range(3):
        one.hit("10.0.0.1", now=T0 + second)
    with pytest.raises(RateLimited) as caught:
        one.hit("10.0.0.1", now=T0 + 10)
    assert caught.value.status == 429
    assert caught.value.retry_after == 50  # the oldest hit (T0) leaves the window at T0 + 60


def test_hits_are_summed_across_two_peers_sharing_one_store(tmp_path: Path) -> None:
    store_a = SqliteCStore(tmp_path / "shared.sqlite")
    store_b = SqliteCStore(tmp_path / "shared.sqlite")
    try:
        a, b = limiter(store_a, "peer-a"), limiter(store_b, "peer-b")
        a.hit("ada@example.com", now=T0)
        b.hit("ada@example.com", now=T0 + 1)
        a.hit("ada@example.com", now=T0 + 2)
        with pytest.raises(RateLimited):
            b.hit("ada@example.com", now=T0 + 3)
        with pytest.raises(RateLimited):
            a.hit("ada@example.com", now=T0 + 3)
        fields = store_a.hgetall(rate_limit_hkey("register-ip"))
        assert {name.split("|")[0] for name in fields} == {"peer-a", "peer-b"}
    finally:
        store_a.close()
        store_b.close()


def test_each_peer_writes_only_its_own_field(cstore: SqliteCStore) -> None:
    a, b = limiter(cstore, "peer-a", max_hits=10), limiter(cstore, "peer-b", max_hits=10)
    a.hit("k", now=T0)
    before = cstore.hgetall(rate_limit_hkey("register-ip"))
    b.hit("k", now=T0 + 1)
    after = cstore.hgetall(rate_limit_hkey("register-ip"))
    for name, value in before.items():
        assert after[name] == value  # peer-a's field is untouched by peer-b
    assert len(after) == 2


def test_the_key_is_not_stored_in_clear(cstore: SqliteCStore) -> None:
    limiter(cstore, "peer-a").hit("ada@example.com", now=T0)
    assert "ada" not in str(cstore.hgetall_raw(rate_limit_hkey("register-ip")))


def test_keys_differing_only_in_case_share_a_window(cstore: SqliteCStore) -> None:
    one = limiter(cstore, "peer-a", max_hits=1)
    one.hit("Ada@Example.com", now=T0)
    with pytest.raises(RateLimited):
        one.hit("ada@example.com", now=T0 + 1)


def test_the_window_slides(cstore: SqliteCStore) -> None:
    one = limiter(cstore, "peer-a", max_hits=2)
    one.hit("k", now=T0)
    one.hit("k", now=T0 + 30)
    with pytest.raises(RateLimited):
        one.hit("k", now=T0 + 59)
    one.hit("k", now=T0 + 61)  # the first hit has left the window
    with pytest.raises(RateLimited) as caught:
        one.hit("k", now=T0 + 62)
    assert caught.value.retry_after == 28  # the hit at T0 + 30 leaves at T0 + 90


def test_a_limited_attempt_is_not_counted(cstore: SqliteCStore) -> None:
    one = limiter(cstore, "peer-a", max_hits=1)
    one.hit("k", now=T0)
    for second in range(1, 50):
        with pytest.raises(RateLimited):
            one.hit("k", now=T0 + second)
    one.hit("k", now=T0 + 61)


def test_other_keys_are_independent(cstore: SqliteCStore) -> None:
    one = limiter(cstore, "peer-a", max_hits=1)
    one.hit("10.0.0.1", now=T0)
    one.hit("10.0.0.2", now=T0)  # not limited by the other key's hit
    for key in ("10.0.0.1", "10.0.0.2"):  # each at its own limit of one
        with pytest.raises(RateLimited):
            one.hit(key, now=T0 + 1)
    one.hit("10.0.0.3", now=T0 + 1)


def test_expired_fields_of_this_peer_are_pruned(cstore: SqliteCStore) -> None:
    one = limiter(cstore, "peer-a", max_hits=5)
    for n in range(4):
        one.hit(f"old-{n}", now=T0)
    later = T0 + 1000
    one.hit("new-1", now=later)
    one.hit("new-2", now=later)
    assert len(cstore.hgetall(rate_limit_hkey("register-ip"))) == 2


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_logins_are_not_slowed_before_the_free_failures_are_used() -> None:
    throttle = LoginThrottle(free_failures=3, clock=Clock())
    for _ in range(2):
        throttle.failed("ada", "1.2.3.4")
    assert throttle.delay_for("ada", "1.2.3.4") == 0


def test_failed_logins_slow_down_exponentially_up_to_a_cap() -> None:
    throttle = LoginThrottle(free_failures=3, base_delay=0.5, max_delay=4, clock=Clock())
    delays = []
    for _ in range(8):
        throttle.failed("ada", "1.2.3.4")
        delays.append(throttle.delay_for("ada", "1.2.3.4"))
    assert delays == [0, 0, 0.5, 1, 2, 4, 4, 4]


def test_a_guessing_ip_is_slowed_for_every_username() -> None:
    throttle = LoginThrottle(free_failures=2, base_delay=1, clock=Clock())
    for name in ("a1", "a2", "a3", "a4"):
        throttle.failed(name, "6.6.6.6")
    assert throttle.delay_for("someone-else", "6.6.6.6") > 0
    assert throttle.delay_for("someone-else", "7.7.7.7") == 0


def test_a_guessed_username_is_slowed_from_every_ip() -> None:
    throttle = LoginThrottle(free_failures=2, base_delay=1, clock=Clock())
    for ip in ("1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"):
        throttle.failed("Ada", ip)
    assert throttle.delay_for("ada", "5.5.5.5") > 0


def test_success_clears_the_usernames_counter_but_not_the_ips() -> None:
    throttle = LoginThrottle(free_failures=1, base_delay=1, clock=Clock())
    for _ in range(3):
        throttle.failed("ada", "1.1.1.1")
    throttle.succeeded("ada", "1.1.1.1")
    assert throttle.delay_for("ada", "9.9.9.9") == 0
    assert throttle.delay_for("grace", "1.1.1.1") > 0


def test_failures_are_forgotten_after_a_while() -> None:
    clock = Clock()
    throttle = LoginThrottle(free_failures=1, base_delay=1, forget_after=900, clock=clock)
    for _ in range(5):
        throttle.failed("ada", "1.1.1.1")
    clock.now = 901
    assert throttle.delay_for("ada", "1.1.1.1") == 0


def test_the_throttle_keeps_a_bounded_number_of_counters() -> None:
    throttle = LoginThrottle(max_entries=100, clock=Clock())
    for n in range(1000):
        throttle.failed(f"user-{n}", f"10.0.{n // 256}.{n % 256}")
    assert len(throttle._counts) <= 100
