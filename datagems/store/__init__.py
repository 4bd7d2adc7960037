"""Store layer: CStore and R1FS interfaces, their backends, and the repositories.

``open_cstore(settings)`` / ``open_r1fs(settings)`` pick the backend: the embedded one
(SQLite / a folder under ``DATAGEN_DATA_DIR``) unless a Ratio1 node URL is configured.
"""

from __future__ import annotations

from datagems.settings import Settings
from datagems.store.base import R1FS, CStore, decode_value, encode_value
from datagems.store.embedded import FolderR1FS, SqliteCStore

__all__ = [
    "R1FS",
    "CStore",
    "FolderR1FS",
    "SqliteCStore",
    "decode_value",
    "encode_value",
    "open_cstore",
    "open_r1fs",
]


def open_cstore(settings: Settings) -> CStore:
    if settings.cstore_url is None:
        return SqliteCStore(settings.data_dir / "cstore.sqlite3")
    from datagems.store.http import HttpCStore

    return HttpCStore(
        settings.cstore_url,
        peers=list(settings.chainstore_peers),
        timeout=settings.store_timeout_seconds,
    )


def open_r1fs(settings: Settings) -> R1FS:
    if settings.r1fs_url is None:
        return FolderR1FS(settings.data_dir / "r1fs")
    from datagems.store.http import HttpR1FS

    return HttpR1FS(
        settings.r1fs_url, timeout=settings.store_timeout_seconds, log_calls=settings.log_r1fs_calls
    )
