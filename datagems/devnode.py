"""``datagems devnode``: the CStore and R1FS HTTP APIs of a Ratio1 edge node, on loopback.

A development stand-in, not a production store: the CStore API (port 31234) is backed by
``SqliteCStore`` and the R1FS API (port 31235) by ``FolderR1FS``, both under the data
folder. Every answer has the node's shape (``reference/ratio1-api.md``): the value under
``result`` next to node metadata, 422 ``{"detail": [...]}`` for a missing or malformed
parameter, 404/405 ``{"detail": "Not Found" | "Method Not Allowed"}``, and 500
``{"detail": {"error", "status_code"}}`` when the backend raises.

Where it differs from a real node, on purpose:

- there are no peers: a write is "confirmed" at once, and ``/hsync`` merges nothing
  (``{"hkey", "source_peer": null, "merged_fields": 0}`` instead of a 500);
- R1FS files are not encrypted; a secret is checked by its hash. ``get_file`` with a
  missing or wrong secret is 404, like a missing file;
- test hooks on the CStore port (not part of any node):

  ``POST /__devnode/faults`` with ``{"writeResult": true|false, "status": null|500..599,
  "delayMs": 0}`` replaces the faults (an omitted field takes its default, so ``{}``
  clears them): ``writeResult: false`` makes later ``/set`` and ``/hset`` answer
  ``result: false`` (after writing, as a node that wrote locally but got no
  confirmation); ``status`` makes every other CStore request answer that status with
  ``{"detail": {"error", "status_code"}}``; ``delayMs`` delays every CStore request.
  It answers ``{"faults": {...}}``; ``GET /__devnode/faults`` shows the current ones.

  ``GET /__devnode/stats`` answers ``{"requests": {path: n}, "r1fsRequests": {path: n},
  "writesByPath": {"/set": {key: n}, "/hset": {hkey: n}, "/hsync": {hkey: n}},
  "writes": {hkey: {field: n}}}``. ``requests`` counts every request received on the
  CStore port (faulted ones too, the hooks excluded); ``writesByPath`` and ``writes``
  count the valid writes that reached the store (``result: false`` ones included).
  ``DELETE /__devnode/stats`` resets the counts.

The server never logs a request line: ``get_file`` carries the secret in its query.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import signal
import tempfile
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from datagems import logs
from datagems.errors import StoreRejected
from datagems.store.embedded import CHUNK, FolderR1FS, SqliteCStore

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 6 * 1024**3  # a node takes uploads up to about 5 GB
NODE_META = {
    "server_node_addr": "0xai_devnode",
    "evm_network": "devnet",
    "ee_node_alias": "datagems-devnode",
    "ee_node_address": "0xai_devnode",
    "ee_node_eth_address": "0x0000000000000000000000000000000000000000",
    "ee_node_network": "devnet",
    "ee_node_ver": "datagems-devnode",
}


# -- answers ---------------------------------------------------------------------------
def envelope(result: Any) -> web.Response:
    """A success: HTTP 200, the value under ``result``, next to the node metadata."""
    return web.json_response({"result": result, **NODE_META}, dumps=_dumps)


def detail(status: int, value: Any) -> web.Response:
    return web.json_response({"detail": value}, status=status, dumps=_dumps)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class Invalid(Exception):
    """A missing or malformed parameter: answered 422 with FastAPI's ``detail`` list."""

    def __init__(self, kind: str, loc: list[Any], msg: str, value: Any = None) -> None:
        super().__init__(msg)
        self.error = {"type": kind, "loc": loc, "msg": msg, "input": value}


def query(request: web.Request, name: str) -> str:
    value = request.query.get(name)
    if value is None:
        raise Invalid("missing", ["query", name], "Field required")
    return value


async def json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Invalid("json_invalid", ["body", 0], "JSON decode error", str(exc)) from None
    if not isinstance(body, dict):
        raise Invalid(
            "model_attributes_type",
            ["body"],
            "Input should be a valid dictionary or object to extract fields from",
            body,
        )
    return body


_TYPES: dict[type, tuple[str, str]] = {
    bool: ("bool_type", "Input should be a valid boolean"),
    int: ("int_type", "Input should be a valid integer"),
    str: ("string_type", "Input should be a valid string"),
    dict: ("dict_type", "Input should be a valid dictionary"),
    list: ("list_type", "Input should be a valid list"),
}


def field_of(
    body: dict[str, Any],
    name: str,
    kind: type | None = str,
    *,
    required: bool = True,
    nullable: bool = False,
) -> Any:
    """``body[name]`` checked: 422 ``missing`` when absent, a type error when mistyped."""
    if name not in body:
        if required:
            raise Invalid("missing", ["body", name], "Field required", body)
        return None
    value = body[name]
    if value is None and (nullable or not required):
        return None
    if kind is not None and not isinstance(value, kind):
        error_type, msg = _TYPES[kind]
        raise Invalid(error_type, ["body", name], msg, value)
    return value


def peers_of(body: dict[str, Any]) -> list[str]:
    peers = field_of(body, "chainstore_peers", list, required=False) or []
    if not all(isinstance(peer, str) for peer in peers):
        raise Invalid("string_type", ["body", "chainstore_peers"], "Input should be a valid string")
    return peers


@web.middleware
async def node_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The node's error forms: 422 / 404 / 405 / 500 ``{"detail": ...}``."""
    try:
        return await handler(request)
    except Invalid as exc:
        return detail(422, [exc.error])
    except web.HTTPNotFound:
        return detail(404, "Not Found")
    except web.HTTPMethodNotAllowed:
        return detail(405, "Method Not Allowed")
    except web.HTTPException:
        raise
    except Exception as exc:
        logger.warning("%s %s raised %s: %s", request.method, request.path, type(exc).__name__, exc)
        return detail(500, {"error": f"{type(exc).__name__}: {exc}", "status_code": 500})


# -- the node ----------------------------------------------------------------------------
@dataclass
class Faults:
    write_result: bool = True
    status: int | None = None
    delay_ms: int = 0

    def wire(self) -> dict[str, Any]:
        return {"writeResult": self.write_result, "status": self.status, "delayMs": self.delay_ms}


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    r1fs_requests: Counter[str] = field(default_factory=Counter)
    by_path: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    writes: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def wire(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "r1fsRequests": dict(self.r1fs_requests),
            "writesByPath": {path: dict(keys) for path, keys in self.by_path.items()},
            "writes": {hkey: dict(fields) for hkey, fields in self.writes.items()},
        }


class DevNode:
    """The two services over one embedded store, plus the test hooks."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.cstore = SqliteCStore(self.data_dir / "cstore.sqlite3")
        self.r1fs = FolderR1FS(self.data_dir / "r1fs")
        self.incoming = self.data_dir / "incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.faults = Faults()
        self.stats = Stats()

    def close(self) -> None:
        self.cstore.close()

    # -- CStore ---------------------------------------------------------------------
    async def cstore_status(self, request: web.Request) -> web.Response:
        return envelope({"ok": True, "message": f"devnode CStore at {self.cstore.path}"})

    def _written(self, path: str, key: str, field_name: str | None = None) -> web.Response:
        self.stats.by_path[path][key] += 1
        if field_name is not None:
            self.stats.writes[key][field_name] += 1
        return envelope(self.faults.write_result)

    async def set(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        key = field_of(body, "key")
        value = field_of(body, "value", None, nullable=True)
        peers_of(body)
        if not key:  # a real node refuses an empty key: HTTP 200, ``result: false``
            return envelope(False)
        self.cstore.set_raw(key, value)
        return self._written("/set", key)

    async def get(self, request: web.Request) -> web.Response:
        return envelope(self.cstore.get_raw(query(request, "key")))

    async def hset(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        hkey = field_of(body, "hkey")
        key = field_of(body, "key")
        value = field_of(body, "value", None, nullable=True)
        peers_of(body)
        self.cstore.hset_raw(hkey, key, value)
        return self._written("/hset", hkey, key)

    async def hget(self, request: web.Request) -> web.Response:
        hkey, key = query(request, "hkey"), query(request, "key")
        return envelope(self.cstore.hget_raw(hkey, key))

    async def hgetall(self, request: web.Request) -> web.Response:
        return envelope(self.cstore.hgetall_raw(query(request, "hkey")))

    async def hsync(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        hkey = field_of(body, "hkey")
        peers_of(body)
        self.stats.by_path["/hsync"][hkey] += 1
        # no peers here: nothing to merge (a real node answers 500 when no peer answers)
        return envelope({"hkey": hkey, "source_peer": None, "merged_fields": 0})

    # -- test hooks ------------------------------------------------------------------
    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": self.faults.wire()})

    async def set_faults(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        write_result = field_of(body, "writeResult", bool, required=False)
        status = field_of(body, "status", int, required=False)
        delay_ms = field_of(body, "delayMs", int, required=False)
        if status is not None and not 500 <= status <= 599:
            raise Invalid("value_error", ["body", "status"], "status must be null or 500..599")
        if delay_ms is not None and delay_ms < 0:
            raise Invalid("value_error", ["body", "delayMs"], "delayMs must be >= 0")
        self.faults = Faults(
            write_result=True if write_result is None else write_result,
            status=status,
            delay_ms=delay_ms or 0,
        )
        logger.info("faults now %s", self.faults.wire())
        return web.json_response({"faults": self.faults.wire()})

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.wire())

    async def reset_stats(self, request: web.Request) -> web.Response:
        self.stats = Stats()
        return web.json_response(self.stats.wire())

    @web.middleware
    async def cstore_hooks(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Counts requests and applies the injected faults (never to the hooks)."""
        if request.path.startswith("/__devnode/"):
            return await handler(request)
        self.stats.requests[request.path] += 1
        if self.faults.delay_ms:
            await asyncio.sleep(self.faults.delay_ms / 1000)
        if self.faults.status is not None:
            error = "fault injected by /__devnode/faults"
            return detail(self.faults.status, {"error": error, "status_code": self.faults.status})
        return await handler(request)

    # -- R1FS ------------------------------------------------------------------------
    async def r1fs_status(self, request: web.Request) -> web.Response:
        return envelope(
            {
                "ID": "12D3KooWDevnode",
                "PublicKey": "",
                "Addresses": [],
                "AgentVersion": "datagems-devnode",
                "Protocols": [],
            }
        )

    async def add_json(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        data = field_of(body, "data", dict)
        filename = field_of(body, "fn", str, required=False) or "data.json"
        secret = field_of(body, "secret", str, required=False)
        content = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        return envelope({"cid": self.r1fs.add_file(content, filename, secret=secret)})

    async def add_file_base64(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        encoded = field_of(body, "file_base64_str")
        filename = field_of(body, "filename", str, required=False) or "file"
        secret = field_of(body, "secret", str, required=False)
        content = base64.b64decode(encoded, validate=True)  # raises: 500, as a node would
        return envelope({"cid": self.r1fs.add_file(content, filename, secret=secret)})

    async def add_file(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            raise Invalid("missing", ["body", "file"], "Field required")
        upload: Path | None = None
        filename = "file"
        secret = None
        try:
            async for part in await request.multipart():
                if part.name == "file" and hasattr(part, "read_chunk"):
                    filename = part.filename or filename
                    fd, name = tempfile.mkstemp(dir=self.incoming, prefix="upload-")
                    upload = Path(name)
                    with os.fdopen(fd, "wb") as out:
                        while chunk := await part.read_chunk(CHUNK):
                            out.write(chunk)
                elif part.name == "body" and hasattr(part, "text"):
                    text = await part.text()
                    try:
                        options = orjson.loads(text) if text.strip() else {}
                    except orjson.JSONDecodeError:
                        raise Invalid(
                            "json_invalid", ["body", "body"], "JSON decode error"
                        ) from None
                    if isinstance(options, dict) and isinstance(options.get("secret"), str):
                        secret = options["secret"] or None
            if upload is None:
                raise Invalid("missing", ["body", "file"], "Field required")
            cid = self.r1fs.add_path(upload, filename, secret=secret)
        finally:
            if upload is not None:
                upload.unlink(missing_ok=True)
        return envelope({"message": f"File {filename} uploaded", "cid": cid})

    async def get_file(self, request: web.Request) -> web.StreamResponse:
        cid = query(request, "cid")
        secret = request.query.get("secret") or None
        try:
            meta = self.r1fs.meta(cid, secret)
        except StoreRejected:
            return detail(404, "File not found")
        x_meta = {"file": meta.get("file", cid), "filename": meta.get("filename", cid)}
        response = web.StreamResponse(
            headers={
                "content-type": "application/octet-stream",
                "x-meta": json.dumps(x_meta),  # ASCII-escaped: header values are Latin-1
            }
        )
        with self.r1fs.open_file(cid, secret=secret) as chunks:
            await response.prepare(request)
            for chunk in chunks:
                await response.write(chunk)
        await response.write_eof()
        return response

    async def get_file_base64(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        cid = field_of(body, "cid")
        secret = field_of(body, "secret", str, required=False)
        try:
            meta = self.r1fs.meta(cid, secret)
            content = self.r1fs.get_file(cid, secret=secret)
        except StoreRejected as exc:
            return envelope({"error": str(exc)})
        encoded = base64.b64encode(content).decode("ascii")
        return envelope({"file_base64_str": encoded, "filename": meta.get("filename", cid)})

    async def delete_file(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        cid = field_of(body, "cid")
        path = self.r1fs.root / cid
        if not cid or cid.startswith(".") or "/" in cid or not path.is_file():
            return envelope({"success": False, "message": "File not found", "cid": cid})
        path.unlink(missing_ok=True)
        (self.r1fs.root / f"{cid}.meta").unlink(missing_ok=True)
        return envelope({"success": True, "message": "File deleted", "cid": cid})

    @web.middleware
    async def count_r1fs(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.stats.r1fs_requests[request.path] += 1
        return await handler(request)

    # -- the two apps ----------------------------------------------------------------
    def cstore_routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/get_status", self.cstore_status),
            ("POST", "/set", self.set),
            ("GET", "/get", self.get),
            ("POST", "/hset", self.hset),
            ("GET", "/hget", self.hget),
            ("GET", "/hgetall", self.hgetall),
            ("POST", "/hsync", self.hsync),
            ("GET", "/__devnode/faults", self.get_faults),
            ("POST", "/__devnode/faults", self.set_faults),
            ("GET", "/__devnode/stats", self.get_stats),
            ("DELETE", "/__devnode/stats", self.reset_stats),
        ]

    def r1fs_routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/get_status", self.r1fs_status),
            ("POST", "/add_json", self.add_json),
            ("POST", "/add_file_base64", self.add_file_base64),
            ("POST", "/add_file", self.add_file),
            ("GET", "/get_file", self.get_file),
            ("POST", "/get_file_base64", self.get_file_base64),
            ("POST", "/delete_file", self.delete_file),
        ]

    def cstore_app(self) -> web.Application:
        return _app(self.cstore_routes(), [node_errors, self.cstore_hooks])

    def r1fs_app(self) -> web.Application:
        return _app(self.r1fs_routes(), [self.count_r1fs, node_errors])


def _app(routes: list[tuple[str, str, Handler]], middlewares: list[Any]) -> web.Application:
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    return app


# -- command -----------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--cstore-port", type=int, default=31234, help="CStore API port")
    parser.add_argument("--r1fs-port", type=int, default=31235, help="R1FS API port")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the store lives (default: $DATAGEN_DATA_DIR or ./.datagems-devnode)",
    )


def main(args: argparse.Namespace) -> int:
    logs.configure("INFO", "devnode")
    data_dir = args.data_dir or Path(os.environ.get("DATAGEN_DATA_DIR") or ".datagems-devnode")
    asyncio.run(serve(args.host, args.cstore_port, args.r1fs_port, data_dir))
    return 0


async def serve(host: str, cstore_port: int, r1fs_port: int, data_dir: Path) -> None:
    """Serve both APIs until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    node = DevNode(data_dir)
    runners = []
    try:
        for app, port in ((node.cstore_app(), cstore_port), (node.r1fs_app(), r1fs_port)):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, host, port).start()
        print(
            f"DataGems devnode: CStore at http://{host}:{cstore_port}, "
            f"R1FS at http://{host}:{r1fs_port} (data in {data_dir})",
            flush=True,
        )
        await stop.wait()
    finally:
        logger.info("stopping")
        for runner in reversed(runners):
            await runner.cleanup()
        node.close()
