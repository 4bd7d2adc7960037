"""CStore and R1FS of a Ratio1 edge node over HTTP (see reference/ratio1-api.md).

Both clients share one small transport: a sync ``httpx.Client`` (thread-safe, keep-alive)
with a timeout, a bounded number of attempts with exponential backoff on transport
errors, timeouts and 5xx (then ``StoreUnavailable``), and no retry on 4xx
(``StoreRejected``). Every answer is the node's envelope: the value is under ``result``.

A CStore write answered with ``result: false`` raises ``WriteNotConfirmed`` (the node wrote
it locally but no peer confirmed it); an R1FS answer with ``result.error`` raises
``StoreRejected``. Error messages and logs name the method, path and CID, never a secret
(and the URL shown is reduced to scheme, host and port).
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import ijson
import orjson

from datagems.errors import StoreRejected, StoreUnavailable, WriteNotConfirmed
from datagems.store.base import R1FS, CStore

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024
SCAN_CHUNK = 64 * 1024  # bytes parsed per step of a streamed hash read
_SECRET_QUERY = re.compile(r"(secret=)[^&\s\"']*", re.IGNORECASE)


class _RedactSecretQuery(logging.Filter):
    """httpx logs request URLs at INFO; ``get_file`` carries the secret in its query."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        if "secret=" in message.lower():
            record.msg = _SECRET_QUERY.sub(r"\1***", message)
            record.args = None
        return True


logging.getLogger("httpx").addFilter(_RedactSecretQuery())


def display_url(url: str) -> str:
    """``scheme://host:port`` of a URL: no credentials, path or query in messages."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


class _Transport:
    """One node service: the client, the retry policy and the envelope."""

    def __init__(
        self,
        service: str,
        base_url: str,
        *,
        timeout: float,
        attempts: int,
        backoff_seconds: float,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.service = service
        self.where = display_url(base_url)
        self.attempts = max(1, attempts)
        self.backoff_seconds = backoff_seconds
        self.client = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )

    def _name(self, method: str, path: str) -> str:
        return f"{self.service} {method} {path} at {self.where}"

    def send(
        self,
        method: str,
        path: str,
        *,
        stream: bool = False,
        build: Callable[[], dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with bounded retries; return a 2xx response (streamed if asked).

        ``build`` makes fresh request arguments per attempt (a file to re-open).
        """
        name = self._name(method, path)
        failure = ""
        cause: BaseException | None = None
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(min(self.backoff_seconds * 2 ** (attempt - 1), 5.0))
            extra = build() if build else {}
            try:
                request = self.client.build_request(method, path, **kwargs, **extra)
                response = self.client.send(request, stream=stream)
            except httpx.TimeoutException as exc:
                failure, cause = "timed out", exc
                continue
            except httpx.TransportError as exc:
                failure, cause = type(exc).__name__, exc
                continue
            finally:
                for value in extra.values():
                    for handle in _files_of(value):
                        handle.close()
            if response.is_success:
                return response
            detail = _detail(response)
            response.close()
            if response.status_code < 500:
                raise StoreRejected(f"{name}: HTTP {response.status_code}{detail}")
            failure, cause = f"HTTP {response.status_code}{detail}", None
        message = f"{name}: {failure} (after {self.attempts} attempts)"
        if cause is None:
            raise StoreUnavailable(message)
        raise StoreUnavailable(message) from cause

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; the ``result`` of the envelope."""
        response = self.send(method, path, **kwargs)
        return self.result(method, path, response)

    def result(self, method: str, path: str, response: httpx.Response) -> Any:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise StoreUnavailable(f"{self._name(method, path)}: not JSON") from exc
        if not isinstance(body, dict) or "result" not in body:
            raise StoreUnavailable(f"{self._name(method, path)}: no result in the answer")
        return body["result"]

    def close(self) -> None:
        self.client.close()


def _files_of(value: Any) -> list[Any]:
    """Open files inside request arguments (multipart ``files``) to close after a send."""
    if isinstance(value, dict):
        found = []
        for item in value.values():
            if isinstance(item, tuple) and len(item) > 1 and hasattr(item[1], "close"):
                found.append(item[1])
        return found
    return []


def _detail(response: httpx.Response) -> str:
    """A short reason from an error answer (``detail``), for the message."""
    try:
        response.read()
        body = orjson.loads(response.content)
    except Exception:
        return ""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        detail = detail.get("error") or detail.get("detail")
    elif isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        detail = f"{first.get('msg', '')} {first.get('loc', '')}".strip()
    text = str(detail) if detail else ""
    text = _SECRET_QUERY.sub(r"\1***", text)
    return f" ({text[:200]})" if text else ""


class HttpCStore(CStore):
    """CStore of a Ratio1 node. ``peers`` is sent as ``chainstore_peers`` on every write."""

    def __init__(
        self,
        base_url: str,
        *,
        peers: Sequence[str] = (),
        timeout: float = 35.0,
        attempts: int = 3,
        backoff_seconds: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.peers = list(peers)
        self._http = _Transport(
            "CStore",
            base_url,
            timeout=timeout,
            attempts=attempts,
            backoff_seconds=backoff_seconds,
            transport=transport,
        )

    def _write(self, path: str, body: dict[str, Any]) -> None:
        result = self._http.call("POST", path, json={**body, "chainstore_peers": self.peers})
        if result is False or result is None:
            raise WriteNotConfirmed(f"CStore {path} at {self._http.where}: not confirmed")

    def get_raw(self, key: str) -> Any:
        return self._http.call("GET", "/get", params={"key": key})

    def set_raw(self, key: str, value: Any) -> None:
        self._write("/set", {"key": key, "value": value})

    def hget_raw(self, hkey: str, field: str) -> Any:
        return self._http.call("GET", "/hget", params={"hkey": hkey, "key": field})

    def hset_raw(self, hkey: str, field: str, value: Any) -> None:
        self._write("/hset", {"hkey": hkey, "key": field, "value": value})

    def hgetall_raw(self, hkey: str) -> dict[str, Any]:
        result = self._http.call("GET", "/hgetall", params={"hkey": hkey})
        if result is None:
            return {}
        if not isinstance(result, dict):
            raise StoreUnavailable(f"CStore /hgetall at {self._http.where}: not an object")
        return result

    def hscan_raw(self, hkey: str) -> Iterator[tuple[str, Any]]:
        """``/hgetall`` read as a stream: the answer is parsed as it arrives (ijson's push
        parser), so a hash of 50 000 fields costs one field of memory, not the whole answer.
        A failure after the first field raises ``StoreUnavailable`` (no retry mid-stream)."""
        name = f"CStore GET /hgetall at {self._http.where}"
        response = self._http.send("GET", "/hgetall", params={"hkey": hkey}, stream=True)
        found = ijson.sendable_list()
        parser = ijson.kvitems_coro(found, "result", use_float=True)
        try:
            for chunk in response.iter_bytes(SCAN_CHUNK):
                parser.send(chunk)
                yield from found
                del found[:]
            parser.close()
            yield from found
        except (httpx.HTTPError, ijson.JSONError) as exc:
            raise StoreUnavailable(f"{name}: the answer broke off ({type(exc).__name__})") from exc
        finally:
            response.close()

    def hsync(self, hkey: str) -> None:
        self._http.call("POST", "/hsync", json={"hkey": hkey, "chainstore_peers": self.peers})

    def status(self) -> Any:
        return self._http.call("GET", "/get_status")

    def close(self) -> None:
        self._http.close()


class HttpR1FS(R1FS):
    """R1FS of a Ratio1 node. ``log_calls`` logs method and CID at INFO, never the secret."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 35.0,
        log_calls: bool = False,
        attempts: int = 3,
        backoff_seconds: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.log_calls = log_calls
        self._http = _Transport(
            "R1FS",
            base_url,
            timeout=timeout,
            attempts=attempts,
            backoff_seconds=backoff_seconds,
            transport=transport,
        )

    def _log(self, method: str, cid: str) -> None:
        if self.log_calls:
            logger.info("r1fs %s cid=%s", method, cid)

    def _checked(self, path: str, result: Any) -> Any:
        if isinstance(result, dict) and result.get("error"):
            raise StoreRejected(f"R1FS {path} at {self._http.where}: {result['error']}")
        return result

    def _cid(self, path: str, result: Any) -> str:
        result = self._checked(path, result)
        cid = result.get("cid") if isinstance(result, dict) else None
        if not isinstance(cid, str) or not cid:
            raise StoreUnavailable(f"R1FS {path} at {self._http.where}: no CID in the answer")
        return cid

    def add_file(self, data: bytes, filename: str, *, secret: str | None = None) -> str:
        body: dict[str, Any] = {
            "file_base64_str": base64.b64encode(data).decode("ascii"),
            "filename": filename,
        }
        if secret:
            body["secret"] = secret
        cid = self._cid("/add_file_base64", self._http.call("POST", "/add_file_base64", json=body))
        self._log("add_file_base64", cid)
        return cid

    def add_path(self, path: Path, filename: str, *, secret: str | None = None) -> str:
        data = {"body": orjson.dumps({"secret": secret}).decode()} if secret else None

        def files() -> dict[str, Any]:  # a fresh handle per attempt; closed after each send
            return {"files": {"file": (filename, open(path, "rb"), "application/octet-stream")}}

        response = self._http.send("POST", "/add_file", data=data, build=files)
        cid = self._cid("/add_file", self._http.result("POST", "/add_file", response))
        self._log("add_file", cid)
        return cid

    def add_json(
        self, data: dict[str, Any], *, filename: str | None = None, secret: str | None = None
    ) -> str:
        if not isinstance(data, dict):
            raise TypeError("R1FS add_json takes an object")
        body: dict[str, Any] = {"data": data}
        if filename:
            body["fn"] = filename
        if secret:
            body["secret"] = secret
        cid = self._cid("/add_json", self._http.call("POST", "/add_json", json=body))
        self._log("add_json", cid)
        return cid

    def open_file(
        self, cid: str, *, secret: str | None = None
    ) -> AbstractContextManager[Iterator[bytes]]:
        return self._open(cid, secret)

    @contextmanager
    def _open(self, cid: str, secret: str | None) -> Iterator[Iterator[bytes]]:
        params = {"cid": cid}
        if secret:
            params["secret"] = secret
        self._log("get_file", cid)
        try:
            response = self._http.send("GET", "/get_file", params=params, stream=True)
        except StoreRejected as exc:
            raise StoreRejected(f"R1FS: no readable file with CID {cid}") from exc
        try:
            if "x-meta" not in response.headers and response.headers.get(
                "content-type", ""
            ).startswith("application/json"):
                # some node versions answer a failure as a 200 envelope with result.error
                response.read()
                try:
                    body = orjson.loads(response.content)
                except orjson.JSONDecodeError:
                    body = None
                if isinstance(body, dict) and isinstance(body.get("result"), dict):
                    self._checked("/get_file", body["result"])

            def chunks() -> Iterator[bytes]:
                try:
                    yield from response.iter_bytes(CHUNK)
                except httpx.TransportError as exc:
                    raise StoreUnavailable(f"R1FS /get_file {cid}: {type(exc).__name__}") from exc

            yield chunks()
        finally:
            response.close()

    def status(self) -> Any:
        return self._http.call("GET", "/get_status")

    def delete_file(self, cid: str) -> bool:
        self._log("delete_file", cid)
        result = self._checked(
            "/delete_file", self._http.call("POST", "/delete_file", json={"cid": cid})
        )
        return bool(result.get("success")) if isinstance(result, dict) else bool(result)

    def close(self) -> None:
        self._http.close()


__all__ = ["HttpCStore", "HttpR1FS", "display_url"]
