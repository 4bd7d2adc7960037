from pathlib import Path

import orjson

from datagems.job.results import ResultFile
from datagems.models import Range

R = [Range(start=0, end=10)]


def test_a_torn_last_line_is_cut_and_the_records_before_it_count(tmp_path: Path) -> None:
    path = tmp_path / "job_a.jsonl"
    path.write_bytes(b'{"i":0,"ok":true,"data":{"x":1}}\n{"i":1,"ok":false,"error":"e"}\n{"i":2,"o')
    results = ResultFile(path)

    done = results.resume(R)

    assert done.ok == {0: True, 1: False}
    assert path.read_bytes().endswith(b'"e"}\n')
    results.append({"i": 2, "ok": True, "data": {}})
    assert results.resume(R).ok == {0: True, 1: False, 2: True}


def test_an_ok_result_wins_over_a_failed_one_for_the_same_index(tmp_path: Path) -> None:
    results = ResultFile(tmp_path / "r.jsonl")
    results.append({"i": 5, "ok": False, "error": "x"})
    results.append({"i": 5, "ok": True, "data": {"a": 1}})

    assert results.resume(R).ok == {5: True}
    path, failures = results.write_slice(tmp_path / "slice.jsonl", R)
    [line] = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert (line["i"], line["ok"], line["data"]) == (5, True, {"a": 1})
    assert [h["error"] for h in line["history"]] == ["x"]
    assert failures == []


def test_of_two_ok_lines_for_one_index_the_slice_keeps_the_last_as_the_export_does(
    tmp_path: Path,
) -> None:
    """The original's slices can hold two ok lines for one index (capture README 6.1): a
    slice rewritten from one keeps the line the original's export shows."""
    results = ResultFile(tmp_path / "r.jsonl")
    results.append({"i": 2, "ok": True, "data": {"v": "first"}})
    results.append({"i": 2, "ok": False, "error": "late failure"})
    results.append({"i": 2, "ok": True, "data": {"v": "last"}})
    path, failures = results.write_slice(tmp_path / "slice.jsonl", R)
    [line] = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert line["data"] == {"v": "last"} and failures == []


def test_the_slice_is_sorted_by_index_and_lists_its_failures(tmp_path: Path) -> None:
    results = ResultFile(tmp_path / "r.jsonl")
    for i in (7, 3, 9, 4):
        ok = i != 9
        results.append({"i": i, "ok": ok, **({"data": {"n": i}} if ok else {"error": "bad"})})
    results.append({"i": 42, "ok": True, "data": {}})  # outside the range: ignored

    path, failures = results.write_slice(tmp_path / "slice.jsonl", R)

    assert [orjson.loads(line)["i"] for line in path.read_bytes().splitlines()] == [3, 4, 7, 9]
    assert failures == [{"index": 9, "message": "bad"}]


def test_a_retried_record_keeps_its_earlier_failure_as_history(tmp_path: Path) -> None:
    results = ResultFile(tmp_path / "r.jsonl")
    results.append({"i": 1, "ok": False, "error": "bad", "reason": "invalid_json"})
    results.append({"i": 2, "ok": False, "error": "bad", "reason": "transport"})
    results.append({"i": 1, "ok": True, "data": {"x": 1}, "round": 1})

    done = results.resume(R)
    assert done.to_retry(1) == [2]  # index 1 was retried (and is ok now); 2 was not
    path, failures = results.write_slice(tmp_path / "slice.jsonl", R)
    lines = {e["i"]: e for e in map(orjson.loads, path.read_bytes().splitlines())}
    assert lines[1]["ok"] and lines[1]["history"][0]["reason"] == "invalid_json"
    assert failures == [{"index": 2, "message": "bad"}]


def test_a_slice_covers_every_range_a_peer_owns(tmp_path: Path) -> None:
    results = ResultFile(tmp_path / "r.jsonl")
    for i in (0, 1, 10, 11, 20):
        results.append({"i": i, "ok": True, "data": {}})
    ranges = [Range(start=0, end=2), Range(start=20, end=21)]

    assert sorted(results.resume(ranges).ok) == [0, 1, 20]
    path, _ = results.write_slice(tmp_path / "s.jsonl", ranges)
    assert [orjson.loads(x)["i"] for x in path.read_bytes().splitlines()] == [0, 1, 20]


def test_overlapping_or_unsorted_ranges_give_each_index_one_line_in_order(
    tmp_path: Path,
) -> None:
    results = ResultFile(tmp_path / "r.jsonl")
    for i in (12, 3, 7, 5, 30):
        results.append({"i": i, "ok": True, "data": {"n": i}})
    results.append({"i": 5, "ok": False, "error": "late failure", "reason": "timeout"})
    ranges = [Range(start=10, end=13), Range(start=0, end=6), Range(start=4, end=8)]

    path, failures = results.write_slice(tmp_path / "s.jsonl", ranges)

    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    assert [(e["i"], e["ok"]) for e in lines] == [(3, True), (5, True), (7, True), (12, True)]
    assert failures == []


def test_an_empty_or_missing_file_writes_an_empty_slice(tmp_path: Path) -> None:
    results = ResultFile(tmp_path / "never-written.jsonl")

    path, failures = results.write_slice(tmp_path / "s.jsonl", [Range(start=0, end=100)])

    assert path.read_bytes() == b""
    assert failures == []
