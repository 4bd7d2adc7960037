"""HttpCStore / HttpR1FS map every failure of a node to the store errors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest

from datagems.bench.procs import free_port
from datagems.errors import StoreRejected, StoreUnavailable, WriteNotConfirmed
from datagems.store.http import HttpCStore, HttpR1FS
from tests.store.conftest import DevNode

ENVELOPE = {"server_node_addr": "0xai_mock", "ee_node_alias": "mock"}


@pytest.fixture
def client(clean_devnode: DevNode) -> Iterator[HttpCStore]:
    store = HttpCStore(
        clean_devnode.cstore_url, peers=["a"], timeout=2, attempts=3, backoff_seconds=0.01
    )
    try:
        yield store
    finally:
        store.close()


def mocked(handler: Callable[[httpx.Request], httpx.Response], **kwargs: object) -> HttpCStore:
    return HttpCStore(
        "http://node.invalid:31234",
        peers=["p1", "p2"],
        transport=httpx.MockTransport(handler),
        backoff_seconds=0.001,
        **kwargs,  # type: ignore[arg-type]
    )


def answer(result: object, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"result": result, **ENVELOPE})


# -- against a devnode -------------------------------------------------------------------
def test_result_false_on_a_write_raises_write_not_confirmed(
    clean_devnode: DevNode, client: HttpCStore
) -> None:
    clean_devnode.faults(writeResult=False)
    with pytest.raises(WriteNotConfirmed):
        client.set("k:unconfirmed", {"a": 1})
    with pytest.raises(WriteNotConfirmed):
        client.hset("h:unconfirmed", "f", {"a": 1})
    assert client.hget("h:unconfirmed", "f") == {"a": 1}  # written locally all the same


def test_a_503_raises_store_unavailable_after_the_bounded_retries(
    clean_devnode: DevNode, client: HttpCStore
) -> None:
    clean_devnode.faults(status=503)
    with pytest.raises(StoreUnavailable, match="HTTP 503"):
        client.hset("h:down", "f", 1)
    with pytest.raises(StoreUnavailable):
        client.get("k:down")
    assert clean_devnode.stats()["requests"] == {"/hset": 3, "/get": 3}


def test_a_500_from_a_raising_node_is_retried_then_store_unavailable(
    clean_devnode: DevNode, client: HttpCStore
) -> None:
    clean_devnode.faults(status=500)
    with pytest.raises(StoreUnavailable, match="fault injected"):
        client.hgetall("h:down")


def test_a_slow_node_times_out_into_store_unavailable(clean_devnode: DevNode) -> None:
    clean_devnode.faults(delayMs=1000)
    store = HttpCStore(clean_devnode.cstore_url, timeout=0.1, attempts=2, backoff_seconds=0.01)
    try:
        with pytest.raises(StoreUnavailable, match="timed out") as error:
            store.get("k:slow")
        assert isinstance(error.value.__cause__, httpx.TimeoutException)
    finally:
        store.close()


def test_a_closed_port_raises_store_unavailable_from_the_connect_error() -> None:
    store = HttpCStore(f"http://127.0.0.1:{free_port()}", attempts=2, backoff_seconds=0.01)
    try:
        with pytest.raises(StoreUnavailable) as error:
            store.hset("h", "f", 1)
        assert isinstance(error.value.__cause__, httpx.ConnectError)
    finally:
        store.close()
    r1fs = HttpR1FS(f"http://127.0.0.1:{free_port()}", attempts=1)
    try:
        with pytest.raises(StoreUnavailable):
            r1fs.add_json({"a": 1})
    finally:
        r1fs.close()


def test_a_4xx_raises_store_rejected_without_retrying(clean_devnode: DevNode) -> None:
    wrong_service = HttpCStore(clean_devnode.r1fs_url, attempts=3, backoff_seconds=0.01)
    try:
        with pytest.raises(StoreRejected, match="HTTP 404"):
            wrong_service.get("k")
    finally:
        wrong_service.close()
    assert clean_devnode.stats()["r1fsRequests"] == {"/get": 1}  # no retry


def test_the_client_works_again_once_the_fault_is_cleared(
    clean_devnode: DevNode, client: HttpCStore
) -> None:
    clean_devnode.faults(status=503)
    with pytest.raises(StoreUnavailable):
        client.set("k:back", 1)
    clean_devnode.faults()
    client.set("k:back", 2)
    assert client.get("k:back") == 2


def test_r1fs_errors_never_carry_the_secret(
    devnode: DevNode, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "very-private-secret-0042"
    r1fs = HttpR1FS(devnode.r1fs_url, log_calls=True, attempts=1)
    try:
        with caplog.at_level(logging.DEBUG):
            cid = r1fs.add_file(b"data", "d.bin", secret=secret)
            assert r1fs.get_file(cid, secret=secret) == b"data"
            with pytest.raises(StoreRejected) as error:
                r1fs.get_file(cid, secret=secret + "-wrong")
    finally:
        r1fs.close()
    assert secret not in str(error.value)
    assert secret not in repr(error.value.__cause__)
    assert f"cid={cid}" in caplog.text
    assert secret not in caplog.text


# -- cases a real server cannot produce: a mock transport ---------------------------------
def test_chainstore_peers_is_sent_on_every_write_and_hsync() -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, orjson.loads(request.content)))
        return answer({"hkey": "h", "source_peer": "p2", "merged_fields": 1}
                      if request.url.path == "/hsync" else True)  # fmt: skip

    store = mocked(handler)
    store.set("k", 1)
    store.hset("h", "f", {"a": 1})
    store.hset("h", "f", None)
    store.hsync("h")
    assert [path for path, _ in seen] == ["/set", "/hset", "/hset", "/hsync"]
    assert all(body["chainstore_peers"] == ["p1", "p2"] for _, body in seen)
    assert seen[1][1] == {
        "hkey": "h",
        "key": "f",
        "value": '{"a":1}',
        "chainstore_peers": ["p1", "p2"],
    }
    assert seen[2][1]["value"] is None


def test_transient_5xx_and_504_are_retried_until_an_answer() -> None:
    statuses = iter([503, 504])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(statuses, 200)
        return answer('"ok"') if status == 200 else httpx.Response(status, json={"detail": {}})

    assert mocked(handler, attempts=3).get("k") == "ok"


def test_a_200_without_an_envelope_is_store_unavailable() -> None:
    store = mocked(lambda request: httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(StoreUnavailable, match="not JSON"):
        store.get("k")
    store = mocked(lambda request: httpx.Response(200, json={"success": True}))
    with pytest.raises(StoreUnavailable, match="no result"):
        store.get("k")


def test_a_null_result_on_a_write_is_not_a_confirmation() -> None:
    with pytest.raises(WriteNotConfirmed):
        mocked(lambda request: answer(None)).set("k", 1)


def test_an_r1fs_result_error_in_a_200_is_store_rejected() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return answer({"error": "cannot decrypt"})

    r1fs = HttpR1FS("http://node.invalid:31235", transport=httpx.MockTransport(handler))
    with pytest.raises(StoreRejected, match="cannot decrypt"):
        r1fs.add_json({"a": 1})
    with pytest.raises(StoreRejected, match="cannot decrypt"):
        r1fs.get_file("QmX", secret="s")


def test_the_error_message_shows_no_credentials_of_the_base_url() -> None:
    store = HttpCStore(
        "http://user:hunter2@node.invalid:31234",
        transport=httpx.MockTransport(lambda request: httpx.Response(400, json={"detail": "bad"})),
    )
    with pytest.raises(StoreRejected) as error:
        store.get("k")
    assert "hunter2" not in str(error.value)
    assert "node.invalid:31234" in str(error.value)
