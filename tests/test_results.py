from pathlib import Path

import orjson

from datagems.results import ResultFile


def test_a_torn_last_line_is_cut_and_the_records_before_it_count(tmp_path: Path) -> None:
    path = tmp_path / "job_a.jsonl"
    path.write_bytes(b'{"i":0,"ok":true,"data":{"x":1}}\n{"i":1,"ok":false,"error":"e"}\n{"i":2,"o')
    results = ResultFile(path)

    done = results.resume(0, 10)

    assert done.ok == {0: True, 1: False}
    assert path.read_bytes().endswith(b'"e"}\n')
    results.append({"i": 2, "ok": True, "data": {}})
    assert results.resume(0, 10).ok == {0: True, 1: False, 2: True}


def test_an_ok_result_wins_over_a_failed_one_for_the_same_index(tmp_path: Path) -> None:
    results = ResultFile(tmp_path / "r.jsonl")
    results.append({"i": 5, "ok": False, "error": "x"})
    results.append({"i": 5, "ok": True, "data": {"a": 1}})

    assert results.resume(0, 10).ok == {5: True}
    path, failures = results.write_slice(tmp_path / "slice.jsonl", 0, 10)
    assert [orjson.loads(line) for line in path.read_bytes().splitlines()] == [
        {"i": 5, "ok": True, "data": {"a": 1}}
    ]
    assert failures == []


def test_the_slice_is_sorted_by_index_and_lists_its_failures(tmp_path: Path) -> None:
    results = ResultFile(tmp_path / "r.jsonl")
    for i in (7, 3, 9, 4):
        ok = i != 9
        results.append({"i": i, "ok": ok, **({"data": {"n": i}} if ok else {"error": "bad"})})
    results.append({"i": 42, "ok": True, "data": {}})  # outside the range: ignored

    path, failures = results.write_slice(tmp_path / "slice.jsonl", 0, 10)

    assert [orjson.loads(line)["i"] for line in path.read_bytes().splitlines()] == [3, 4, 7, 9]
    assert failures == [{"index": 9, "message": "bad"}]
