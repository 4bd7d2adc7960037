"""The embedded default: CStore on SQLite and R1FS as a content-addressed folder.

Both live in the data folder and need no set-up. SQLite runs in WAL mode with a busy
timeout, one connection per thread, one short transaction per write, so several replica
processes on one host can read and write the same store at once without losing a write.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from datagems.errors import StoreRejected, StoreUnavailable
from datagems.store.base import R1FS, CStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, is_text INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS hkv (
  hkey TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL, is_text INTEGER NOT NULL,
  PRIMARY KEY (hkey, field)
);
"""
CHUNK = 64 * 1024
SCAN_BATCH = 1000  # rows per step of a streamed hash read


def _pack(value: Any) -> tuple[str, int]:
    if isinstance(value, str):
        return value, 1
    return orjson.dumps(value).decode(), 0


def _unpack(value: str, is_text: int) -> Any:
    return value if is_text else orjson.loads(value)


class _Connection:
    """One thread's connection and the lock it holds while using it: ``close`` takes that
    lock before closing, so a store closed while a worker thread still writes (a replica
    stopping) waits for the write instead of freeing the connection under it."""

    __slots__ = ("db", "lock")

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.lock = threading.RLock()


class SqliteCStore(CStore):
    """CStore backed by one SQLite file; also the store behind the devnode."""

    def __init__(self, path: Path, *, busy_timeout_seconds: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._timeout = busy_timeout_seconds
        self._local = threading.local()
        self._all: list[_Connection] = []
        self._lock = threading.Lock()
        try:
            self._connection().db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"embedded store at {self.path}: {exc}") from exc

    def _connection(self) -> _Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            db = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            connection = self._local.connection = _Connection(db)
            with self._lock:
                self._all.append(connection)
        return connection

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        db = connection.db
        with connection.lock:
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:  # a closed store's connection included
                raise StoreUnavailable(f"embedded store at {self.path}: {exc}") from exc

    def _read(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        connection = self._connection()
        with connection.lock:
            try:
                return connection.db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"embedded store at {self.path}: {exc}") from exc

    def get_raw(self, key: str) -> Any:
        rows = self._read("SELECT value, is_text FROM kv WHERE key = ?", (key,))
        return _unpack(*rows[0]) if rows else None

    def set_raw(self, key: str, value: Any) -> None:
        with self._tx() as db:
            if value is None:
                db.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO kv (key, value, is_text) VALUES (?, ?, ?)",
                    (key, *_pack(value)),
                )

    def hget_raw(self, hkey: str, field: str) -> Any:
        rows = self._read(
            "SELECT value, is_text FROM hkv WHERE hkey = ? AND field = ?", (hkey, field)
        )
        return _unpack(*rows[0]) if rows else None

    def hset_raw(self, hkey: str, field: str, value: Any) -> None:
        with self._tx() as db:
            if value is None:
                db.execute("DELETE FROM hkv WHERE hkey = ? AND field = ?", (hkey, field))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO hkv (hkey, field, value, is_text) VALUES (?, ?, ?, ?)",
                    (hkey, field, *_pack(value)),
                )

    def hgetall_raw(self, hkey: str) -> dict[str, Any]:
        rows = self._read("SELECT field, value, is_text FROM hkv WHERE hkey = ?", (hkey,))
        return {field: _unpack(value, is_text) for field, value, is_text in rows}

    def hscan_raw(self, hkey: str) -> Iterator[tuple[str, Any]]:
        """Rows in batches, on a connection of the scan's own (one read snapshot, one batch
        in memory; the thread's connection stays free for writes meanwhile)."""
        try:
            db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"embedded store at {self.path}: {exc}") from exc
        try:
            cursor = db.execute("SELECT field, value, is_text FROM hkv WHERE hkey = ?", (hkey,))
            while rows := cursor.fetchmany(SCAN_BATCH):
                for field, value, is_text in rows:
                    yield field, _unpack(value, is_text)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"embedded store at {self.path}: {exc}") from exc
        finally:
            db.close()

    def close(self) -> None:
        with self._lock:
            for connection in self._all:
                with connection.lock:  # a write in progress on another thread ends first
                    connection.db.close()
            self._all.clear()
        self._local = threading.local()


def secret_tag(secret: str | None) -> str:
    """What the folder keeps of a secret: a hash, never the secret."""
    return hashlib.sha256((secret or "").encode()).hexdigest()


class FolderR1FS(R1FS):
    """R1FS as a folder: ``<cid>`` holds the bytes, ``<cid>.meta`` the name and secret tag.

    The CID is a hash of the content and the secret tag, so one content added with two
    secrets gives two files. Files are written to a temporary name and renamed, so a
    crash never leaves a half file under a CID.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _store(self, chunks: Iterator[bytes], filename: str, secret: str | None) -> str:
        tag = secret_tag(secret)
        digest = hashlib.sha256(tag.encode())
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            cid = "Qm" + digest.hexdigest()[:44]
            meta = orjson.dumps({"file": cid, "filename": filename, "secret": tag})
            meta_tmp = self.root / f".{cid}.meta.tmp"
            meta_tmp.write_bytes(meta)
            os.replace(meta_tmp, self.root / f"{cid}.meta")
            os.replace(tmp, self.root / cid)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StoreUnavailable(f"embedded R1FS at {self.root}: {exc}") from exc
        return cid

    def add_file(self, data: bytes, filename: str, *, secret: str | None = None) -> str:
        return self._store(iter((data,)), filename, secret)

    def add_path(self, path: Path, filename: str, *, secret: str | None = None) -> str:
        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as source:
                while chunk := source.read(CHUNK):
                    yield chunk

        return self._store(chunks(), filename, secret)

    def meta(self, cid: str, secret: str | None) -> dict[str, Any]:
        if not cid or "/" in cid or "\\" in cid or cid.startswith("."):
            raise StoreRejected(f"no file with CID {cid!r}")
        try:
            meta = orjson.loads((self.root / f"{cid}.meta").read_bytes())
        except FileNotFoundError:
            raise StoreRejected(f"no file with CID {cid}") from None
        except (OSError, orjson.JSONDecodeError) as exc:
            raise StoreUnavailable(f"embedded R1FS: cannot read {cid}: {exc}") from exc
        if meta.get("secret") != secret_tag(secret):
            raise StoreRejected(f"cannot decrypt {cid}: wrong secret")
        return meta

    @contextmanager
    def open_file(self, cid: str, *, secret: str | None = None) -> Iterator[Iterator[bytes]]:
        self.meta(cid, secret)
        try:
            source = open(self.root / cid, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise StoreRejected(f"no file with CID {cid}") from None

        def chunks() -> Iterator[bytes]:
            while chunk := source.read(CHUNK):
                yield chunk

        try:
            yield chunks()
        finally:
            source.close()

    def delete_file(self, cid: str) -> bool:
        if not cid or "/" in cid or "\\" in cid or cid.startswith("."):
            return False
        path = self.root / cid
        found = path.is_file()
        try:
            path.unlink(missing_ok=True)
            (self.root / f"{cid}.meta").unlink(missing_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"embedded R1FS: cannot delete {cid}: {exc}") from exc
        return found
