"""The original DataGems' recorded run (``tests/fixtures/ts-1.1.3-capture``), for contract
tests: what it stored in CStore and R1FS, and what its export answered.

``seed(cstore, r1fs, stage)`` writes a stage's store, value for value, into a store of ours
(the exact stored texts, and every R1FS file under its captured CID).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson

from datagems.store.base import R1FS, CStore

CAPTURE = Path(__file__).resolve().parent / "fixtures" / "ts-1.1.3-capture"
STAGES = ("stage1", "stage2", "stage3")
# the stores: stage 1 and 2 share one (stage 2 holds all of it), stage 3 is a fresh one
STORES = ("stage2", "stage3")
SESSION_SECRET = "capture-session-secret-TEST-0123456789abcdef"
AUTH_PEPPER = "capture-pepper-TEST-secret"
ADMIN_PASSWORD = "CaptureBoot-Admin-1"
TESS = ("tess_capture_fd7c", "ONsYScS_G0HUAzuL")
SECRETS = (SESSION_SECRET, AUTH_PEPPER, ADMIN_PASSWORD, TESS[1])


@cache
def store(stage: str) -> dict[str, Any]:
    """``{"keys": {key: text}, "hashes": {hkey: {field: text}}}`` after ``stage``."""
    return orjson.loads((CAPTURE / stage / "cstore.json").read_bytes())


def writes(stage: str) -> list[dict[str, Any]]:
    """Every write call of ``stage``, in order (``reqBody`` is the exact request text)."""
    lines = (CAPTURE / stage / "writes.jsonl").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines if line.strip()]


@cache
def r1fs_files() -> dict[str, bytes]:
    """CID -> the bytes the node stored."""
    folder = CAPTURE / "r1fs"
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.name.startswith("Qm")}


def jobs(stage: str) -> dict[str, dict[str, Any]]:
    """Job id -> job base, parsed."""
    return {k: orjson.loads(v) for k, v in store(stage)["hashes"].get("datagen:jobs", {}).items()}


def exports() -> dict[str, tuple[Any, str]]:
    """Job id -> (the original's JSON export, its CSV export text), for the finished jobs."""
    found: dict[str, tuple[Any, str]] = {}
    for path in sorted((CAPTURE / "exports").glob("*.json")):
        job_id = path.stem.split("-", 1)[1]
        csv_text = path.with_suffix(".csv").read_text()
        found[job_id] = (orjson.loads(path.read_bytes()), csv_text)
    return found


def stage_of(job_id: str) -> str:
    return next(stage for stage in STORES if job_id in jobs(stage))


def seed(cstore: CStore, r1fs: R1FS, stage: str) -> None:
    """Write ``stage``'s store into ``cstore`` (the exact texts) and every captured file into
    ``r1fs`` (checking that each lands under its captured CID)."""
    captured = store(stage)
    for key, text in captured["keys"].items():
        cstore.set_raw(key, text)
    for hkey, fields in captured["hashes"].items():
        for name, text in fields.items():
            cstore.hset_raw(hkey, name, text)
    for cid, body in r1fs_files().items():
        stored = r1fs.add_file(body, f"{cid}.capture")
        assert stored == cid, f"{cid} stored as {stored}"
