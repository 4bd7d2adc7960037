"""The devnode answers every row of the CStore and R1FS tables with the node's shapes."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.store.conftest import DevNode

NODE_FIELDS = {
    "server_node_addr",
    "evm_network",
    "ee_node_alias",
    "ee_node_address",
    "ee_node_eth_address",
    "ee_node_network",
    "ee_node_ver",
}


@pytest.fixture
def cstore(clean_devnode: DevNode) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=clean_devnode.cstore_url, timeout=10) as client:
        yield client


@pytest.fixture
def r1fs(devnode: DevNode) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=devnode.r1fs_url, timeout=10) as client:
        yield client


@pytest.fixture
def hkey() -> str:
    return f"api:{uuid.uuid4().hex}"


def result_of(response: httpx.Response) -> Any:
    """The ``result`` of a 200 envelope, after checking the envelope itself."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"result", *NODE_FIELDS}
    assert "success" not in body
    return body["result"]


def missing(where: str, name: str) -> dict[str, Any]:
    return {"type": "missing", "loc": [where, name], "msg": "Field required"}


def assert_422(response: httpx.Response, *expected: dict[str, Any]) -> None:
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert [{k: e[k] for k in ("type", "loc", "msg")} for e in errors] == list(expected)


# -- CStore ------------------------------------------------------------------------------
def test_cstore_get_status_answers_ok(cstore: httpx.Client) -> None:
    status = result_of(cstore.get("/get_status"))
    assert status["ok"] is True
    assert isinstance(status["message"], str)


def test_set_then_get_returns_the_stored_server_value(cstore: httpx.Client, hkey: str) -> None:
    assert result_of(cstore.post("/set", json={"key": hkey, "value": '{"a":1}'})) is True
    assert result_of(cstore.get("/get", params={"key": hkey})) == '{"a":1}'


def test_set_stores_any_json_value_as_it_is(cstore: httpx.Client, hkey: str) -> None:
    body = {"key": hkey, "value": {"raw": [1, 2]}, "chainstore_peers": ["a"]}
    assert result_of(cstore.post("/set", json=body)) is True
    assert result_of(cstore.get("/get", params={"key": hkey})) == {"raw": [1, 2]}


def test_set_with_a_null_value_deletes_the_key(cstore: httpx.Client, hkey: str) -> None:
    cstore.post("/set", json={"key": hkey, "value": "1"})
    assert result_of(cstore.post("/set", json={"key": hkey, "value": None})) is True
    assert result_of(cstore.get("/get", params={"key": hkey})) is None


def test_get_of_a_missing_key_is_null(cstore: httpx.Client, hkey: str) -> None:
    assert result_of(cstore.get("/get", params={"key": hkey})) is None


def test_set_with_an_empty_key_is_refused_as_a_real_node_does(cstore: httpx.Client) -> None:
    answer = cstore.post("/set", json={"key": "", "value": '"x"', "chainstore_peers": []})
    assert answer.status_code == 200
    assert result_of(answer) is False
    assert result_of(cstore.get("/get", params={"key": ""})) is None


def test_hset_hget_and_hgetall_answer_the_documented_shapes(
    cstore: httpx.Client, hkey: str
) -> None:
    body = {"hkey": hkey, "key": "p1", "value": '{"n":1}', "chainstore_peers": ["p1", "p2"]}
    assert result_of(cstore.post("/hset", json=body)) is True
    cstore.post("/hset", json={"hkey": hkey, "key": "p2", "value": "plain"})
    assert result_of(cstore.get("/hget", params={"hkey": hkey, "key": "p1"})) == '{"n":1}'
    assert result_of(cstore.get("/hget", params={"hkey": hkey, "key": "nope"})) is None
    assert result_of(cstore.get("/hgetall", params={"hkey": hkey})) == {
        "p1": '{"n":1}',
        "p2": "plain",
    }


def test_hset_with_a_null_value_deletes_the_field(cstore: httpx.Client, hkey: str) -> None:
    cstore.post("/hset", json={"hkey": hkey, "key": "f", "value": "1"})
    assert result_of(cstore.post("/hset", json={"hkey": hkey, "key": "f", "value": None})) is True
    assert result_of(cstore.get("/hgetall", params={"hkey": hkey})) == {}


def test_hgetall_of_a_missing_hash_is_an_empty_object(cstore: httpx.Client, hkey: str) -> None:
    assert result_of(cstore.get("/hgetall", params={"hkey": hkey})) == {}


def test_hsync_merges_nothing_on_a_node_without_peers(cstore: httpx.Client, hkey: str) -> None:
    answer = result_of(cstore.post("/hsync", json={"hkey": hkey, "chainstore_peers": ["a"]}))
    assert answer == {"hkey": hkey, "source_peer": None, "merged_fields": 0}


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("/get", {}, "key"),
        ("/hget", {"key": "f"}, "hkey"),
        ("/hget", {"hkey": "h"}, "key"),
        ("/hgetall", {}, "hkey"),
    ],
)
def test_a_missing_query_parameter_is_a_422(
    cstore: httpx.Client, path: str, params: dict[str, str], name: str
) -> None:
    assert_422(cstore.get(path, params=params), missing("query", name))


@pytest.mark.parametrize(
    ("path", "body", "name"),
    [
        ("/set", {"value": "1"}, "key"),
        ("/set", {"key": "k"}, "value"),
        ("/hset", {"key": "f", "value": "1"}, "hkey"),
        ("/hset", {"hkey": "h", "value": "1"}, "key"),
        ("/hsync", {}, "hkey"),
    ],
)
def test_a_missing_body_field_is_a_422(
    cstore: httpx.Client, path: str, body: dict[str, Any], name: str
) -> None:
    assert_422(cstore.post(path, json=body), missing("body", name))


def test_a_malformed_body_is_a_422(cstore: httpx.Client) -> None:
    response = cstore.post(
        "/set", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert_422(
        cstore.post("/set", json=[1, 2]),
        {
            "type": "model_attributes_type",
            "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
        },
    )
    assert_422(
        cstore.post("/hset", json={"hkey": 1, "key": "f", "value": "v"}),
        {"type": "string_type", "loc": ["body", "hkey"], "msg": "Input should be a valid string"},
    )


def test_an_unknown_path_is_a_404_and_a_wrong_method_a_405(cstore: httpx.Client) -> None:
    unknown = cstore.get("/no_such_endpoint")
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "Not Found"})
    wrong = cstore.get("/set")
    assert (wrong.status_code, wrong.json()) == (405, {"detail": "Method Not Allowed"})
    wrong = cstore.post("/get", json={"key": "k"})
    assert (wrong.status_code, wrong.json()) == (405, {"detail": "Method Not Allowed"})


def test_a_write_fault_answers_result_false_but_keeps_the_write(
    clean_devnode: DevNode, cstore: httpx.Client, hkey: str
) -> None:
    assert clean_devnode.faults(writeResult=False) == {
        "writeResult": False,
        "status": None,
        "delayMs": 0,
    }
    assert result_of(cstore.post("/set", json={"key": hkey, "value": "1"})) is False
    assert result_of(cstore.post("/hset", json={"hkey": hkey, "key": "f", "value": "2"})) is False
    assert result_of(cstore.get("/get", params={"key": hkey})) == "1"
    clean_devnode.faults()
    assert result_of(cstore.post("/set", json={"key": hkey, "value": "3"})) is True


def test_a_status_fault_answers_every_cstore_request_with_that_status(
    clean_devnode: DevNode, cstore: httpx.Client
) -> None:
    clean_devnode.faults(status=503)
    for response in (cstore.get("/get_status"), cstore.get("/get", params={"key": "k"})):
        assert response.status_code == 503
        assert response.json()["detail"]["status_code"] == 503
        assert response.json()["detail"]["error"]
    clean_devnode.faults(status=500)
    assert cstore.post("/hset", json={"hkey": "h", "key": "f", "value": "1"}).status_code == 500
    clean_devnode.faults()
    assert cstore.get("/get_status").status_code == 200


def test_a_delay_fault_delays_requests_until_cleared(
    clean_devnode: DevNode, cstore: httpx.Client
) -> None:
    clean_devnode.faults(delayMs=400)
    with pytest.raises(httpx.TimeoutException):
        cstore.get("/get_status", timeout=0.1)
    clean_devnode.faults()
    assert cstore.get("/get_status", timeout=5).status_code == 200


def test_bad_faults_are_refused_with_a_422(clean_devnode: DevNode, cstore: httpx.Client) -> None:
    assert cstore.post("/__devnode/faults", json={"status": 404}).status_code == 422
    assert cstore.post("/__devnode/faults", json={"delayMs": -1}).status_code == 422
    assert cstore.post("/__devnode/faults", json={"writeResult": "no"}).status_code == 422
    assert cstore.get("/__devnode/faults").json() == {
        "faults": {"writeResult": True, "status": None, "delayMs": 0}
    }


def test_stats_count_requests_per_path_and_writes_per_hkey_and_field(
    clean_devnode: DevNode, cstore: httpx.Client, hkey: str
) -> None:
    cstore.post("/hset", json={"hkey": hkey, "key": "a", "value": "1"})
    cstore.post("/hset", json={"hkey": hkey, "key": "a", "value": "2"})
    cstore.post("/hset", json={"hkey": hkey, "key": "b", "value": "3"})
    cstore.post("/set", json={"key": hkey, "value": "4"})
    cstore.post("/hsync", json={"hkey": hkey})
    cstore.get("/hgetall", params={"hkey": hkey})
    cstore.post("/hset", json={"key": "no hkey"})  # a 422 is a request, not a write
    stats = clean_devnode.stats()
    assert stats["requests"] == {"/hset": 4, "/set": 1, "/hsync": 1, "/hgetall": 1}
    assert stats["writes"] == {hkey: {"a": 2, "b": 1}}
    assert stats["writesByPath"] == {
        "/hset": {hkey: 3},
        "/set": {hkey: 1},
        "/hsync": {hkey: 1},
    }
    clean_devnode.reset_stats()
    assert clean_devnode.stats()["requests"] == {}


# -- R1FS --------------------------------------------------------------------------------
def test_r1fs_get_status_answers_the_identity_object(r1fs: httpx.Client) -> None:
    assert "ID" in result_of(r1fs.get("/get_status"))


def test_add_json_answers_a_cid_and_stores_compact_sorted_json(r1fs: httpx.Client) -> None:
    cid = result_of(r1fs.post("/add_json", json={"data": {"b": 1, "a": 2}, "fn": "d.json"}))["cid"]
    response = r1fs.get("/get_file", params={"cid": cid})
    assert response.content == b'{"a":2,"b":1}'
    assert orjson.loads(response.headers["x-meta"]) == {"file": cid, "filename": "d.json"}


def test_add_json_refuses_a_list_with_a_422(r1fs: httpx.Client) -> None:
    assert_422(
        r1fs.post("/add_json", json={"data": [1, 2]}),
        {"type": "dict_type", "loc": ["body", "data"], "msg": "Input should be a valid dictionary"},
    )
    assert_422(r1fs.post("/add_json", json={"fn": "x"}), missing("body", "data"))


def test_add_file_base64_round_trips_through_get_file_base64(r1fs: httpx.Client) -> None:
    data = bytes(range(256))
    body = {"file_base64_str": base64.b64encode(data).decode(), "filename": "b.bin", "secret": "k"}
    cid = result_of(r1fs.post("/add_file_base64", json=body))["cid"]
    got = result_of(r1fs.post("/get_file_base64", json={"cid": cid, "secret": "k"}))
    assert got == {"file_base64_str": base64.b64encode(data).decode(), "filename": "b.bin"}


def test_get_file_base64_reports_a_wrong_secret_or_missing_file_as_result_error(
    r1fs: httpx.Client,
) -> None:
    body = {"file_base64_str": base64.b64encode(b"x").decode(), "secret": "right"}
    cid = result_of(r1fs.post("/add_file_base64", json=body))["cid"]
    for request in ({"cid": cid}, {"cid": cid, "secret": "wrong"}, {"cid": "QmMissing"}):
        assert "error" in result_of(r1fs.post("/get_file_base64", json=request))
    assert_422(r1fs.post("/get_file_base64", json={}), missing("body", "cid"))


def test_add_file_takes_a_multipart_file_with_a_secret_in_the_body_field(
    r1fs: httpx.Client,
) -> None:
    files = {"file": ("rows.jsonl", b'{"i":0}\n', "application/octet-stream")}
    answer = result_of(r1fs.post("/add_file", files=files, data={"body": '{"secret": "m"}'}))
    assert set(answer) == {"message", "cid"}
    response = r1fs.get("/get_file", params={"cid": answer["cid"], "secret": "m"})
    assert response.content == b'{"i":0}\n'
    assert orjson.loads(response.headers["x-meta"])["filename"] == "rows.jsonl"
    assert r1fs.get("/get_file", params={"cid": answer["cid"]}).status_code == 404


def test_add_file_without_a_file_part_is_a_422(r1fs: httpx.Client) -> None:
    assert_422(r1fs.post("/add_file", data={"body": "{}"}), missing("body", "file"))


def test_get_file_of_a_missing_cid_is_a_404_and_without_cid_a_422(r1fs: httpx.Client) -> None:
    assert r1fs.get("/get_file", params={"cid": "QmMissing"}).status_code == 404
    assert_422(r1fs.get("/get_file"), missing("query", "cid"))


def test_delete_file_removes_the_file(r1fs: httpx.Client) -> None:
    cid = result_of(r1fs.post("/add_json", json={"data": {"gone": True}}))["cid"]
    assert result_of(r1fs.post("/delete_file", json={"cid": cid})) == {
        "success": True,
        "message": "File deleted",
        "cid": cid,
    }
    assert r1fs.get("/get_file", params={"cid": cid}).status_code == 404
    assert result_of(r1fs.post("/delete_file", json={"cid": cid}))["success"] is False


def test_an_endpoint_that_raises_answers_500_with_the_error(r1fs: httpx.Client) -> None:
    response = r1fs.post("/add_file_base64", json={"file_base64_str": "not base64 !!"})
    assert response.status_code == 500
    assert set(response.json()["detail"]) == {"error", "status_code"}
    assert response.json()["detail"]["status_code"] == 500


def test_r1fs_unknown_path_and_wrong_method_use_the_node_forms(r1fs: httpx.Client) -> None:
    assert r1fs.get("/get_json").json() == {"detail": "Not Found"}
    assert r1fs.get("/add_json").status_code == 405
    assert r1fs.get("/add_json").json() == {"detail": "Method Not Allowed"}
