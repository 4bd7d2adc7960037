"""The repositories round-trip the contract's JSON shapes, the original app's included."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from datagems.models import (
    CancelRequest,
    JobBase,
    JobDetails,
    JobSummary,
    PeerState,
    Range,
    UserIndexEntry,
    UserSettings,
    now_iso,
    parse_iso,
    split_ranges,
)
from datagems.store import keys
from datagems.store.embedded import FolderR1FS, SqliteCStore
from datagems.store.repos import (
    CancelsRepo,
    DetailsRepo,
    JobsRepo,
    PeersRepo,
    UserJobsRepo,
    UserSettingsRepo,
    UsersRepo,
)

# Written by hand after the original app's recorded run (tests/test_capture.py reads the
# real values), as it stores them (JSON.stringify: camelCase, compact), each with a field
# this replica does not know.
TS_JOB_BASE: dict[str, Any] = {
    "id": "job_01HZX",
    "owner": "alice",
    "title": "Customer records",
    "status": "running",
    "totalRecords": 10,
    "datasetMode": True,
    "peers": ["0xai_A", "0xai_B", "0xai_C"],
    "peerCount": 3,
    "totalGenerated": 4,
    "totalOk": 3,
    "totalFailed": 1,
    "jobDetailsCid": "QmDetails",
    "createdAt": "2026-11-22T02:34:00.314Z",
    "schemaGeneratedAt": "2026-11-22T02:33:58.001Z",
    "jobStartedAt": "2026-11-22T02:34:01.000Z",
    "schemaDurationMs": 2313,
    "schemaRefreshes": 0,
    "updatedAt": "2026-11-22T02:34:05.120Z",
    "uiHint": {"color": "teal"},
}
TS_PEER_STATE: dict[str, Any] = {
    "peerId": "0xai_B",
    "assigned": 3,
    "range": {"start": 4, "end": 7},
    "generatedOk": 2,
    "generatedFailed": 1,
    "lastUpdateAt": "2026-11-22T02:34:05.000Z",
    "startedAt": "2026-11-22T02:34:01.500Z",
    "finishedAt": "2026-11-22T02:34:06.000Z",
    "resultCid": "QmSlice",
    "errorsCid": "QmErrors",
    "errors": [{"index": 5, "message": "schema validation failed"}],
    "workerVersion": "ts-1.4.2",
}


def stringify(value: Any) -> str:
    """What ``JSON.stringify`` writes."""
    return orjson.dumps(value).decode()


@pytest.fixture
def cstore(tmp_path: Path) -> Iterator[SqliteCStore]:
    store = SqliteCStore(tmp_path / "cstore.sqlite3")
    try:
        yield store
    finally:
        store.close()


def test_a_job_base_written_by_the_original_app_is_read_and_kept_whole(
    cstore: SqliteCStore,
) -> None:
    cstore.hset_raw(keys.JOBS, "job_01HZX", stringify(TS_JOB_BASE))
    jobs = JobsRepo(cstore)
    job = jobs.get("job_01HZX")
    assert job is not None
    assert (job.status, job.total_records, job.peer_count) == ("running", 10, 3)
    assert job.peers == ["0xai_A", "0xai_B", "0xai_C"]
    assert job.job_details_cid == "QmDetails"
    jobs.put(job)
    assert orjson.loads(cstore.hget_raw(keys.JOBS, "job_01HZX")) == TS_JOB_BASE


def test_a_peer_state_written_by_the_original_app_is_read_and_kept_whole(
    cstore: SqliteCStore,
) -> None:
    hkey = keys.job_peers("job_01HZX")
    cstore.hset_raw(hkey, "0xai_B", stringify(TS_PEER_STATE))
    peers = PeersRepo(cstore)
    state = peers.get("job_01HZX", "0xai_B")
    assert state is not None
    assert state.range == Range(start=4, end=7)
    assert (state.done, state.complete) == (3, True)
    assert state.errors is not None and state.errors[0].index == 5
    peers.put("job_01HZX", state)
    stored = orjson.loads(cstore.hget_raw(hkey, "0xai_B"))
    assert {name: stored[name] for name in TS_PEER_STATE} == TS_PEER_STATE
    ours = {info.alias for info in PeerState.model_fields.values()}
    assert set(stored) - set(TS_PEER_STATE) <= ours  # only our own additions, with defaults
    assert stored["workerVersion"] == "ts-1.4.2"


def test_a_peer_state_with_only_the_required_fields_gets_defaults() -> None:
    state = PeerState.model_validate({"peerId": "a"})
    assert (state.assigned, state.generated_ok, state.range.size) == (0, 0, 0)
    assert state.result_cid is None
    assert not PeerState.model_validate({"peerId": "a", "assigned": 2, "generatedOk": 2}).complete


def test_a_job_base_round_trips_in_camel_case_without_none_fields(cstore: SqliteCStore) -> None:
    job = JobBase(id="j1", owner="bob", total_records=5, peers=["a"], peer_count=1)
    JobsRepo(cstore).put(job)
    stored = orjson.loads(cstore.hget_raw(keys.JOBS, "j1"))
    assert stored["totalRecords"] == 5 and stored["peerCount"] == 1
    assert "total_records" not in stored and "jobFinishedAt" not in stored
    assert JobsRepo(cstore).get("j1") == job
    assert JobsRepo(cstore).all() == {"j1": job}


def test_a_listing_skips_a_field_of_another_shape_and_keeps_the_rest(
    cstore: SqliteCStore, caplog: pytest.LogCaptureFixture
) -> None:
    cstore.hset_raw(keys.JOBS, "good", stringify(TS_JOB_BASE))
    cstore.hset_raw(keys.JOBS, "plain", "not json at all")
    cstore.hset_raw(keys.JOBS, "wrong", stringify({"title": "no id or owner"}))
    assert list(JobsRepo(cstore).all()) == ["good"]
    assert "unreadable job plain" in caplog.text
    caplog.clear()
    JobsRepo(cstore).all()  # read again (the next poll): nothing new to say
    assert "unreadable" not in caplog.text


def test_job_details_round_trip_through_r1fs_with_the_schema_field(tmp_path: Path) -> None:
    details = JobDetails.model_validate(
        {
            "id": "j1",
            "owner": "alice",
            "description": "one customer",
            "instructions": "realistic",
            "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
            "inference": {"baseUrl": "http://llm", "path": "/create_chat_completion"},
            "createdAt": "2026-11-22T02:34:00.314Z",
            "schemaGeneratedAt": "2026-11-22T02:33:58.001Z",
            "schemaDurationMs": 2313,
            "schemaRefreshes": 1,
            "meta": {"origin": "ts"},
            "tsOnly": True,
        }
    )
    r1fs = FolderR1FS(tmp_path / "r1fs")
    repo = DetailsRepo(r1fs, secret="details-secret")
    cid = repo.put(details)
    raw = r1fs.get_json(cid, secret="details-secret")
    assert raw["schema"]["properties"]["name"] == {"type": "string"}
    assert raw["inference"] == {"baseUrl": "http://llm", "path": "/create_chat_completion"}
    assert raw["tsOnly"] is True
    assert repo.get(cid) == details


def test_job_details_keep_the_schemas_field_order_through_r1fs_sorted_keys(
    tmp_path: Path,
) -> None:
    schema = {
        "type": "object",
        "properties": {"zip": {"type": "string"}, "city": {"type": "string"}, "age": {}},
    }
    repo = DetailsRepo(FolderR1FS(tmp_path / "r1fs"))
    cid = repo.put(JobDetails(id="j1", owner="alice", json_schema=schema))
    assert list(repo.r1fs.get_json(cid)["schema"]["properties"]) == ["age", "city", "zip"]
    assert list(repo.get(cid).json_schema["properties"]) == ["zip", "city", "age"]


def test_job_details_whose_schema_text_disagrees_with_the_schema_follow_the_schema() -> None:
    details = JobDetails.model_validate(
        {
            "id": "j1",
            "owner": "alice",
            "schema": {"type": "object", "properties": {"b": {}, "a": {}}},
            "schemaText": '{"type": "object", "properties": {"other": {}}}',
        }
    )
    assert list(details.json_schema["properties"]) == ["b", "a"]
    assert orjson.loads(details.schema_text or "") == details.json_schema


def test_users_and_the_email_index_round_trip(cstore: SqliteCStore) -> None:
    users = UsersRepo(cstore)
    users.put(UserIndexEntry(username="alice", email="Alice@Example.com", created_at=now_iso()))
    assert users.username_for_email(" alice@example.COM ") == "alice"
    assert users.get("alice") is not None
    assert list(users.all()) == ["alice"]
    users.delete("alice")
    assert users.get("alice") is None
    assert users.username_for_email("alice@example.com") is None


def test_an_email_index_entry_stored_as_a_plain_string_is_read(cstore: SqliteCStore) -> None:
    cstore.hset_raw(keys.EMAIL_INDEX, "bob@example.com", "bob")
    assert UsersRepo(cstore).username_for_email("bob@example.com") == "bob"


def test_user_jobs_settings_and_cancels_round_trip(cstore: SqliteCStore) -> None:
    summary = JobSummary(id="j1", title="T", status="queued", total_records=3, created_at=now_iso())
    UserJobsRepo(cstore).put("alice", summary)
    assert UserJobsRepo(cstore).all("alice") == {"j1": summary}

    settings_repo = UserSettingsRepo(cstore)
    assert settings_repo.get("alice") == UserSettings()
    settings = UserSettings.model_validate(
        {
            "profiles": [{"id": "p1", "name": "local", "baseUrl": "http://x", "apiKey": "k"}],
            "activeProfileId": "p1",
        }
    )
    settings_repo.put("alice", settings)
    assert settings_repo.get("alice") == settings
    assert orjson.loads(cstore.get_raw(keys.user_settings("alice")))["activeProfileId"] == "p1"

    cancel = CancelRequest(job_id="j1", requested_by="alice", requested_at=now_iso())
    CancelsRepo(cstore).request(cancel)
    assert CancelsRepo(cstore).get("j1") == cancel
    assert CancelsRepo(cstore).all() == {"j1": cancel}


def test_ten_records_over_three_peers_split_four_three_three() -> None:
    assert split_ranges(10, ["a", "b", "c"]) == [
        ("a", Range(start=0, end=4)),
        ("b", Range(start=4, end=7)),
        ("c", Range(start=7, end=10)),
    ]


@pytest.mark.parametrize(
    ("total", "peers", "sizes"),
    [(2, ["a", "b", "c"], [1, 1, 0]), (0, ["a"], [0]), (9, ["a", "b", "c"], [3, 3, 3])],
)
def test_ranges_are_contiguous_and_cover_every_record(
    total: int, peers: list[str], sizes: list[int]
) -> None:
    ranges = split_ranges(total, peers)
    assert [r.size for _, r in ranges] == sizes
    assert ranges[0][1].start == 0 and ranges[-1][1].end == total
    assert all(a.end == b.start for (_, a), (_, b) in itertools.pairwise(ranges))


def test_a_split_needs_a_peer() -> None:
    with pytest.raises(ValueError, match="peer"):
        split_ranges(3, [])


def test_timestamps_are_iso_utc_with_milliseconds_and_z() -> None:
    stamp = now_iso()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    parsed = parse_iso("2026-11-22T02:34:00.314Z")
    assert parsed is not None and parsed.microsecond == 314000 and parsed.utcoffset() is not None
    assert parse_iso("yesterday") is None
    assert parse_iso(None) is None
