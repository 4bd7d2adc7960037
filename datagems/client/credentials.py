"""The sign-in the terminal client remembers: one session token per server, for this user only.

``datagems login`` stores it in ``$XDG_CONFIG_HOME/datagems/credentials.json`` (default
``~/.config/datagems/``): the folder is made ``0700`` and the file is written ``0600``
(created with that mode, then renamed into place, so it is never readable by others, not
even for a moment). The other commands read it when neither ``--token`` nor
``DATAGEMS_TOKEN`` is given. The token is never printed; ``datagems logout`` ends the
session on the server and forgets it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import orjson

FILE_NAME = "credentials.json"


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/datagems`` (an empty or relative value is ignored, as the XDG
    spec says), else ``~/.config/datagems``."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "datagems"


def credentials_path() -> Path:
    return config_dir() / FILE_NAME


def _read_all(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    servers = data.get("servers") if isinstance(data, dict) else None
    return servers if isinstance(servers, dict) else {}


def stored(url: str) -> dict[str, Any] | None:
    """``{token, username, expiresAt}`` remembered for the server at ``url``, or ``None``."""
    entry = _read_all(credentials_path()).get(url)
    if isinstance(entry, dict) and isinstance(entry.get("token"), str) and entry["token"]:
        return entry
    return None


def _write_private(path: Path, servers: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(orjson.dumps({"servers": servers}, option=orjson.OPT_INDENT_2))
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def remember(url: str, token: str, username: str, expires_at: str | None) -> Path:
    """Store the token for ``url`` (others' servers kept); returns the file's path."""
    path = credentials_path()
    servers = _read_all(path)
    servers[url] = {"token": token, "username": username, "expiresAt": expires_at}
    _write_private(path, servers)
    return path


def forget(url: str) -> bool:
    """Drop what is stored for ``url``; ``True`` when there was something."""
    path = credentials_path()
    servers = _read_all(path)
    if url not in servers:
        return False
    del servers[url]
    _write_private(path, servers)
    return True
