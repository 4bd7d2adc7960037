from datagems.job.seen import SeenRecords


def test_an_identical_record_is_seen_whatever_its_key_order() -> None:
    seen = SeenRecords()

    assert seen.add({"name": "Ada", "age": 36}) is False
    assert seen.add({"age": 36, "name": "Ada"}) is True
    assert seen.add({"name": "Ada", "age": 37}) is False


def test_records_stay_remembered_after_they_are_merged_into_the_sorted_array() -> None:
    seen = SeenRecords()
    count = SeenRecords.BATCH * 2 + 10

    assert not any(seen.add({"n": i}) for i in range(count))
    assert len(seen) == count
    assert all(seen.add({"n": i}) for i in range(0, count, 97))
    assert len(seen) == count
