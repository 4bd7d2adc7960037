"""The two narrow store interfaces every backend implements.

``CStore`` is the client view: values go in as Python JSON values and are written as JSON
text (the interop rule of every Ratio1 client); on read, JSON text is parsed and a plain
non-JSON string is returned as it is. Backends implement the ``_raw`` methods, which move
*server values* (what a node stores: normally that JSON text) without interpreting them.

``R1FS`` is a content-addressed file store with an optional secret per file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson


def encode_value(value: Any) -> str:
    """A Python JSON value as the JSON text every Ratio1 client stores."""
    return orjson.dumps(value).decode()


def decode_value(stored: Any) -> Any:
    """A server value back to Python: JSON text is parsed, other strings kept as they are."""
    if not isinstance(stored, str):
        return stored
    try:
        return orjson.loads(stored)
    except orjson.JSONDecodeError:
        return stored


class CStore(ABC):
    """Key/hash store shared by every replica. Writes raise ``StoreError`` on failure."""

    # -- what a backend implements: server values, None deletes ------------------------
    @abstractmethod
    def get_raw(self, key: str) -> Any: ...

    @abstractmethod
    def set_raw(self, key: str, value: Any) -> None: ...

    @abstractmethod
    def hget_raw(self, hkey: str, field: str) -> Any: ...

    @abstractmethod
    def hset_raw(self, hkey: str, field: str, value: Any) -> None: ...

    @abstractmethod
    def hgetall_raw(self, hkey: str) -> dict[str, Any]: ...

    def hscan_raw(self, hkey: str) -> Iterator[tuple[str, Any]]:
        """Every field of a hash with its server value, one at a time, without holding the
        whole hash in memory where the backend can (a full read of a big hash otherwise
        leaves the process tens of MB larger). Consume it to the end promptly."""
        yield from self.hgetall_raw(hkey).items()

    def hsync(self, hkey: str) -> None:  # noqa: B027 - optional: only networked stores sync
        """Pull a hash from peers where the backend can; a no-op otherwise."""

    def delete_file(self, cid: str) -> bool:
        """Remove a file; False when there was none (a second delete is not an error)."""
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""

    # -- the client view: JSON values in, JSON text on the wire ------------------------
    def get(self, key: str) -> Any:
        return decode_value(self.get_raw(key))

    def set(self, key: str, value: Any) -> None:
        self.set_raw(key, None if value is None else encode_value(value))

    def hget(self, hkey: str, field: str) -> Any:
        return decode_value(self.hget_raw(hkey, field))

    def hset(self, hkey: str, field: str, value: Any) -> None:
        self.hset_raw(hkey, field, None if value is None else encode_value(value))

    def hgetall(self, hkey: str) -> dict[str, Any]:
        return {name: decode_value(value) for name, value in self.hgetall_raw(hkey).items()}


class R1FS(ABC):
    """Content-addressed files. A file added with a secret is read back only with it."""

    @abstractmethod
    def add_file(self, data: bytes, filename: str, *, secret: str | None = None) -> str:
        """Store bytes; return the CID."""

    @abstractmethod
    def add_path(self, path: Path, filename: str, *, secret: str | None = None) -> str:
        """Store a local file without reading it whole into memory; return the CID."""

    @abstractmethod
    def open_file(
        self, cid: str, *, secret: str | None = None
    ) -> AbstractContextManager[Iterator[bytes]]:
        """Stream a file's bytes in chunks. ``StoreRejected`` when missing or wrong secret."""

    def add_json(
        self, data: dict[str, Any], *, filename: str | None = None, secret: str | None = None
    ) -> str:
        """Store a JSON object (compact, sorted keys, as the node does); return the CID."""
        if not isinstance(data, dict):
            raise TypeError("R1FS add_json takes an object")
        body = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        return self.add_file(body, filename or "data.json", secret=secret)

    def get_file(self, cid: str, *, secret: str | None = None) -> bytes:
        with self.open_file(cid, secret=secret) as chunks:
            return b"".join(chunks)

    def get_json(self, cid: str, *, secret: str | None = None) -> Any:
        return orjson.loads(self.get_file(cid, secret=secret))

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""
