"""Contract tests over the original app's recorded run: every value it wrote to CStore (every
write, not only the last one) and every R1FS file is read by our models and readers, and
nothing of it is lost when we write it back."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from datagems.accounts.passwords import verify_password
from datagems.accounts.users import Accounts
from datagems.job.results import ResultFile
from datagems.models import (
    ErrorEntry,
    FleetMetrics,
    JobBase,
    JobDetails,
    JobSummary,
    PeerState,
    UserIndexEntry,
    UserSettings,
)
from datagems.store.base import decode_value
from datagems.store.embedded import SqliteCStore
from datagems.store.repos import UsersRepo, unreadable_reason
from tests import capture

# which model reads the values of which key (by prefix); None: a plain-text value
MODELS: tuple[tuple[str, type[BaseModel] | None], ...] = (
    ("datagen:jobs", JobBase),
    ("datagen:job:", PeerState),
    ("datagen:users", UserIndexEntry),
    ("datagen:metrics", FleetMetrics),
)
# written by the original and read by its own code only (accounts engineer: mail failures;
# the rate-limit counters of its registration): decoded, not modelled here
NOT_MODELLED = ("datagen:register-mail-failures", "datagen:rate:")


def model_for(key: str) -> type[BaseModel] | None:
    if key.startswith("datagen:user:") and key.endswith(":jobs"):
        return JobSummary
    if key.startswith("datagen:user:") and key.endswith(":settings"):
        return UserSettings
    return next((model for prefix, model in MODELS if key.startswith(prefix)), None)


def cstore_writes() -> list[tuple[str, str, str]]:
    """(stage, key or hkey, the value text) of every CStore write of the run."""
    found = []
    for stage in capture.STAGES:
        for write in capture.writes(stage):
            if write["svc"] != "cstore":
                continue
            body = orjson.loads(write["reqBody"])
            found.append((stage, body.get("hkey") or body["key"], body["value"]))
    return found


def kept(original: dict[str, Any], written: dict[str, Any]) -> None:
    """Everything the original wrote is in what we write, with the same JSON value and type."""
    missing = {name: value for name, value in original.items() if name not in written}
    assert not missing, f"lost on round trip: {missing}"
    for name, value in original.items():
        assert _text(written[name]) == _text(value), name


def _text(value: Any) -> bytes:
    """The JSON text (keys sorted: their order is not a value), so 3 and 3.0 differ."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


MODELLED = [w for w in cstore_writes() if model_for(w[1]) is not None]


@pytest.mark.parametrize(
    ("stage", "key", "text"), MODELLED, ids=[f"{w[0]}:{w[1]}" for w in MODELLED]
)
def test_every_value_the_original_wrote_is_read_and_written_back_without_loss(
    stage: str, key: str, text: str
) -> None:
    model = model_for(key)
    assert model is not None
    assert unreadable_reason(model, text) is None
    value = orjson.loads(text)
    written = model.model_validate(value).wire()  # type: ignore[attr-defined]
    kept(value, written)


def test_the_job_base_and_metrics_come_back_exactly_as_the_original_wrote_them() -> None:
    """Not only kept: nothing added either (keys in any order), so the original reads back
    its own values."""
    for _stage, key, text in cstore_writes():
        if key in ("datagen:jobs", "datagen:metrics"):
            model = JobBase if key == "datagen:jobs" else FleetMetrics
            assert _text(model.model_validate_json(text).wire()) == _text(orjson.loads(text))


def test_dataset_mode_is_a_boolean_in_every_job_and_reads_as_one() -> None:
    modes = {
        JobBase.model_validate_json(text).dataset_mode
        for stage, key, text in cstore_writes()
        if key == "datagen:jobs"
    }
    assert modes == {False, True}
    # ours once wrote a mode name, or nothing
    assert JobBase(id="j", owner="o", dataset_mode="classification").dataset_mode is True
    assert JobBase.model_validate({"id": "j", "owner": "o"}).wire()["datasetMode"] is False


def test_durations_are_whole_milliseconds_on_the_wire() -> None:
    job = JobBase(id="j", owner="o", schema_duration_ms=12.6, records_duration_ms=3270.4)
    assert orjson.dumps(job.wire()).count(b"DurationMs") == 2
    assert (job.wire()["schemaDurationMs"], job.wire()["recordsDurationMs"]) == (13, 3270)


def test_the_values_we_do_not_model_are_still_decoded() -> None:
    others = [w for w in cstore_writes() if model_for(w[1]) is None]
    assert {key for _, key, _ in others} >= {"datagen:auth", "datagen:user-email-index"}
    for _, key, text in others:
        value = decode_value(text)
        if key == "datagen:user-email-index":
            assert isinstance(value, str) and re.fullmatch(r"[a-z0-9_]+_[0-9a-f]{4}", value)
        elif key.startswith("datagen:rate:"):
            assert isinstance(value, int)
        else:
            assert isinstance(value, dict), key
    assert all(
        key.startswith(NOT_MODELLED) or key in ("datagen:auth", "datagen:user-email-index")
        for _, key, _ in others
    )


def test_the_accounts_and_the_email_index_of_the_original_are_read(tmp_path: Path) -> None:
    cstore = SqliteCStore(tmp_path / "cstore.sqlite3")
    try:
        for hkey in ("datagen:auth", "datagen:user-email-index", "datagen:users"):
            for name, text in capture.store("stage1")["hashes"][hkey].items():
                cstore.hset_raw(hkey, name, text)
        accounts = Accounts(cstore, "datagen:auth", capture.AUTH_PEPPER)
        username, password = capture.TESS
        assert accounts.get(username) is not None
        record = orjson.loads(capture.store("stage1")["hashes"]["datagen:auth"][username])
        assert verify_password(password, record["password"], capture.AUTH_PEPPER)
        assert UsersRepo(cstore).username_for_email("Tess.Capture@Example.com ") == username
    finally:
        cstore.close()


# --------------------------------------------------------------------------- R1FS


def details_files() -> dict[str, dict[str, Any]]:
    """CID -> job details as the node stored them, for every job of the run."""
    found = {}
    for stage in capture.STORES:
        for job in capture.jobs(stage).values():
            cid = job["jobDetailsCid"]
            found[cid] = orjson.loads(capture.r1fs_files()[cid])
    return found


def test_every_job_details_file_and_every_details_upload_is_read_without_loss() -> None:
    sent = [
        orjson.loads(w["reqBody"])["data"]
        for stage in capture.STAGES
        for w in capture.writes(stage)
        if w["path"] == "/add_json"
    ]
    assert len(details_files()) == 6 and len(sent) == 6
    for value in [*details_files().values(), *sent]:
        details = JobDetails.model_validate(value)
        kept(value, details.wire())
        assert details.inference.base_url and details.inference.path == "/create_chat_completion"
        assert details.json_schema["type"] == "object"


def slices() -> dict[str, bytes]:
    """CID -> bytes of every result slice (the JSONL files)."""
    return {cid: body for cid, body in capture.r1fs_files().items() if body.startswith(b'{"i":')}


def test_every_result_slice_is_read_line_by_line(tmp_path: Path) -> None:
    assert len(slices()) == 8
    for cid, body in slices().items():
        lines = [orjson.loads(line) for line in body.splitlines()]
        result = ResultFile(tmp_path / f"{cid}.jsonl")
        result.seed(iter((body,)))
        indices = {line["i"] for line in lines}
        done = result.resume([_range(min(indices), max(indices) + 1)])
        assert set(done.ok) == indices
        # an index with an ok line counts as ok, whatever order its lines came in
        assert {i for i, ok in done.ok.items() if ok} == {x["i"] for x in lines if x["ok"]}


def test_every_errors_file_is_a_list_of_index_and_message() -> None:
    errors = {
        cid: orjson.loads(body)
        for cid, body in capture.r1fs_files().items()
        if body.startswith(b"[")
    }
    assert len(errors) == 4
    for entries in errors.values():
        for entry in entries:
            kept(entry, ErrorEntry.model_validate(entry).wire())


def test_every_captured_file_is_one_of_details_slice_or_errors() -> None:
    files = capture.r1fs_files()
    errors = [cid for cid, body in files.items() if body.startswith(b"[")]
    assert set(files) == set(details_files()) | set(slices()) | set(errors)
    assert io.BytesIO(files[errors[0]]).read()  # readable as they are


def _range(start: int, end: int) -> Any:
    from datagems.models import Range

    return Range(start=start, end=end)
