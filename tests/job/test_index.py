"""The open-jobs index (``datagems.job.index``) over a real embedded store: who opens and
closes entries, the repair of a crash between a job's write and its entry, the rebuild
from ``datagen:jobs``, and, tried over interleavings, that no job that can still need work
is ever missing from it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datagems.bench.original import confirm_as_original
from datagems.job import commands, index, lifecycle
from datagems.models import now_iso
from datagems.services import Services
from datagems.settings import Settings
from datagems.store import keys
from datagems.store.embedded import FolderR1FS, SqliteCStore

DRAFT = {"title": "People", "totalRecords": 4, "schema": {"type": "object"}}


def make_services(root: Path) -> Services:
    settings = Settings.from_env(
        {
            "DATAGEN_DATA_DIR": str(root / "data"),
            "R1EN_CHAINSTORE_PEERS": '["a"]',
            "R1EN_HOST_ADDR": "a",
        }
    )
    return Services(
        settings,
        SqliteCStore(root / "cstore.sqlite3"),
        FolderR1FS(root / "r1fs"),
        "http://127.0.0.1:1",
    )


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    found = make_services(tmp_path)
    try:
        yield found
    finally:
        found.close()


def confirm(services: Services, owner: str = "alice", total: int = 4) -> str:
    job_id = str(uuid.uuid4())
    lifecycle.create_job(
        services, owner=owner, job_id=job_id, draft={**DRAFT, "totalRecords": total}
    )
    return job_id


def reopen(services: Services, job_id: str, kind: str, additional: int = 0) -> None:
    """A retry or an extension asked by the owner, decided by the job's command owner."""
    command = commands.new_command(
        kind, job_id, "alice", via="test", additional=additional, exempt=True
    )
    with services.command_lock:
        commands.apply_pending(services, job_id, [command])


def finish(services: Services, job_id: str, failed: int = 0) -> None:
    """Play peer ``a``: its whole range done (``failed`` of it failed) and uploaded."""
    state = services.peers.get(job_id, "a")
    assert state is not None
    state.generated_ok = state.assigned - failed
    state.generated_failed = failed
    state.started_at = state.finished_at = state.last_update_at = now_iso()
    state.result_cid = services.r1fs.add_file(b"", f"{job_id}_a.jsonl")
    services.peers.put(job_id, state)


def indexed(services: Services) -> set[str]:
    return set(index.open_entries(services))


# --------------------------------------------------------------------------- who writes


def test_a_confirmed_job_is_in_the_index_with_what_a_listing_shows(services: Services) -> None:
    job_id = confirm(services)
    entry = index.open_entries(services)[job_id]
    assert (entry.owner, entry.title, entry.peers) == ("alice", "People", ["a"])
    assert entry.created_at == services.jobs.get(job_id).created_at


def test_a_job_leaves_the_index_when_its_final_base_is_written_and_the_close_is_kept(
    services: Services,
) -> None:
    job_id = confirm(services)
    finish(services, job_id)
    assert lifecycle.finalize(services, job_id).status == "succeeded"
    assert job_id not in indexed(services)
    closed = services.index.parse_closed(job_id, services.index.closed_raw()[job_id])
    assert closed is not None and (closed.status, closed.owner) == ("succeeded", "alice")


def test_a_retried_or_extended_job_is_in_the_index_again(services: Services) -> None:
    retried, extended = confirm(services), confirm(services)
    for job_id in (retried, extended):
        finish(services, job_id, failed=1)
        lifecycle.finalize(services, job_id)
    assert indexed(services) == set()
    reopen(services, retried, "retry")
    reopen(services, extended, "extend", 2)
    assert indexed(services) == {retried, extended}
    assert {job.id for job in lifecycle.open_jobs(services, "alice")} == {retried, extended}


def test_open_jobs_of_a_user_are_read_from_the_index_not_from_every_job(
    services: Services,
) -> None:
    mine, theirs, done = confirm(services), confirm(services, owner="bob"), confirm(services)
    finish(services, done)
    lifecycle.finalize(services, done)
    services.cstore.hset_raw(keys.JOBS, "not-indexed", orjson.dumps({"status": "queued"}).decode())
    assert [job.id for job in lifecycle.open_jobs(services, "alice")] == [mine]
    assert {job.id for job in lifecycle.open_jobs(services)} == {mine, theirs}


# --------------------------------------------------------------------------- crashes


def test_a_confirm_that_died_before_writing_its_job_leaves_an_entry_the_rebuild_drops(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # the process is killed here

    monkeypatch.setattr(services.jobs, "put", die)
    with pytest.raises(KeyboardInterrupt):
        confirm(services)
    monkeypatch.undo()
    [job_id] = indexed(services)
    index.rebuild(services)
    assert job_id in indexed(services)  # within its grace: it may be a confirm in progress
    monkeypatch.setattr(index, "MISSING_GRACE_SECONDS", 0.0)
    index.rebuild(services)
    assert indexed(services) == set()


def test_a_replica_that_died_between_a_final_base_and_its_entry_is_repaired_by_the_rebuild(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = confirm(services)
    finish(services, job_id)

    def die(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(index, "close_job", die)
    with pytest.raises(KeyboardInterrupt):
        lifecycle.finalize(services, job_id)
    monkeypatch.undo()
    assert services.jobs.get(job_id).status == "succeeded" and job_id in indexed(services)
    index.rebuild(services)
    assert job_id not in indexed(services)


def test_jobs_written_straight_into_the_jobs_hash_are_indexed_by_the_rebuild(
    services: Services,
) -> None:
    original = confirm_as_original(
        services.cstore,
        services.r1fs,
        owner="tess",
        title="From the original",
        total=3,
        peers=["a"],
        schema={"type": "object"},
        gateway_url="http://127.0.0.1:1",
    )
    done = confirm(services)
    finish(services, done)
    lifecycle.finalize(services, done)
    services.cstore.hset_raw(keys.OPEN_JOBS, original, None)  # as if no index existed
    assert original not in indexed(services)
    index.rebuild(services, "test")
    assert indexed(services) == {original}
    entry = index.open_entries(services)[original]
    assert (entry.owner, entry.title, entry.peers) == ("tess", "From the original", ["a"])


def test_an_unreadable_job_never_stops_the_others_from_being_indexed(services: Services) -> None:
    services.cstore.hset_raw(keys.JOBS, "garbage", "not json at all")
    services.cstore.hset_raw(keys.JOBS, "no-status", orjson.dumps({"id": "x"}).decode())
    odd = {"id": "odd", "owner": "tess", "status": "paused", "datasetMode": True, "peers": 3}
    services.cstore.hset_raw(keys.JOBS, "odd", orjson.dumps(odd).decode())
    job_id = confirm(services)
    services.cstore.hset_raw(keys.OPEN_JOBS, job_id, None)
    meta = index.rebuild(services)
    assert indexed(services) == {job_id, "odd"}  # an unknown status is not final
    assert (meta.jobs, meta.open, meta.unreadable) == (4, 2, 2)


def test_the_index_is_stale_when_missing_old_or_behind_the_originals_mark(
    services: Services,
) -> None:
    mark = index.original_mark(services)
    assert index.stale_because(None, mark, 3600)
    meta = index.rebuild(services)
    assert index.stale_because(services.index.meta(), mark, 3600) == ""
    assert index.stale_because(meta, mark, 0.0)  # the periodic check is due
    confirm_as_original(
        services.cstore,
        services.r1fs,
        owner="tess",
        title="t",
        total=1,
        peers=["a"],
        schema={"type": "object"},
        gateway_url="http://127.0.0.1:1",
    )
    moved = index.original_mark(services)
    assert moved != mark
    assert "original" in index.stale_because(meta, moved, 3600)


def test_the_originals_per_record_metrics_writes_do_not_move_its_mark(services: Services) -> None:
    metrics = {"totalJobs": 3, "totalRecordsGenerated": 10, "lastJobAt": "2026-11-30T22:12:37Z"}
    services.cstore.set(keys.METRICS, metrics)
    mark = index.original_mark(services)
    services.cstore.set(keys.METRICS, {**metrics, "totalRecordsGenerated": 11})
    assert index.original_mark(services) == mark


def test_old_closes_are_forgotten(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = confirm(services)
    finish(services, job_id)
    lifecycle.finalize(services, job_id)
    assert index.forget_old_closes(services) == 0
    monkeypatch.setattr(index, "CLOSED_KEPT_SECONDS", 0.0)
    # kept while the owner's creation window still counts the job (caps.check_window)
    assert index.forget_old_closes(services) == 0
    services.settings = services.settings.replace(task_window_seconds=0)
    assert index.forget_old_closes(services) == 1
    assert services.index.closed_raw() == {}


# --------------------------------------------------------------------------- interleavings


class Turns:
    """Runs threads one store call at a time, in the order ``schedule`` draws: every call
    of a thread waits until the schedule names that thread (then one call proceeds)."""

    def __init__(self, schedule: list[int]) -> None:
        self.schedule = schedule
        self.position = 0
        self.condition = threading.Condition()
        self.alive: set[int] = set()
        self.local = threading.local()

    def wait(self) -> None:
        me = getattr(self.local, "me", None)
        if me is None:
            return
        with self.condition:
            while True:
                live = sorted(self.alive)
                if self.position < len(self.schedule):
                    chosen = live[self.schedule[self.position] % len(live)]
                else:
                    chosen = live[0]
                if chosen == me:
                    self.position += 1
                    self.condition.notify_all()
                    return
                self.condition.wait(0.5)

    def run(self, bodies: list[Callable[[], None]]) -> None:
        errors: list[BaseException] = []

        def main(me: int, body: Callable[[], None]) -> None:
            self.local.me = me
            try:
                body()
            except BaseException as exc:
                errors.append(exc)
            finally:
                with self.condition:
                    self.alive.discard(me)
                    self.condition.notify_all()

        self.alive = set(range(len(bodies)))
        threads = [threading.Thread(target=main, args=(n, b)) for n, b in enumerate(bodies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not errors, errors


class SteppedStore(SqliteCStore):
    """An embedded store whose every call waits for its thread's turn."""

    turns: Turns | None = None

    def _step(self) -> None:
        if self.turns is not None:
            self.turns.wait()

    def get_raw(self, key: str) -> Any:
        self._step()
        return super().get_raw(key)

    def set_raw(self, key: str, value: Any) -> None:
        self._step()
        super().set_raw(key, value)

    def hget_raw(self, hkey: str, field: str) -> Any:
        self._step()
        return super().hget_raw(hkey, field)

    def hset_raw(self, hkey: str, field: str, value: Any) -> None:
        self._step()
        super().hset_raw(hkey, field, value)

    def hgetall_raw(self, hkey: str) -> dict[str, Any]:
        self._step()
        return super().hgetall_raw(hkey)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    runs=st.lists(
        st.tuples(st.integers(min_value=0, max_value=2), st.integers(min_value=1, max_value=12)),
        max_size=12,
    ),
    kind=st.sampled_from(["retry", "extend"]),
    with_rebuild=st.booleans(),
)
def test_a_job_that_can_still_need_work_is_never_missing_from_the_index(
    tmp_path_factory: pytest.TempPathFactory,
    runs: list[tuple[int, int]],
    kind: str,
    with_rebuild: bool,
) -> None:
    """A peer writes a job's final base and closes it while the job's command owner
    reopens it (retry or extend), and maybe a third replica rebuilds the index: in every
    order of their store calls, a job that is open at the end is in the index."""
    root = tmp_path_factory.mktemp("turns")
    store = SteppedStore(root / "cstore.sqlite3")
    base = make_services(root)
    services = Services(base.settings, store, base.r1fs, base.gateway_url)
    job_id = confirm(services)
    finish(services, job_id, failed=1)
    final = lifecycle.load_job(services, job_id)
    assert final is not None and final.job.status == "succeeded"
    if kind == "retry":
        lifecycle.write_back(services, final.job.model_copy(deep=True))  # a final base to retry

    def close() -> None:
        lifecycle.write_back(services, final.job.model_copy(deep=True))

    def open_again() -> None:
        reopen(services, job_id, kind, 2 if kind == "extend" else 0)

    bodies = [close, open_again]
    if with_rebuild:
        bodies.append(lambda: index.rebuild(services))
    store.turns = Turns([who for who, calls in runs for _ in range(calls)])
    Turns.run(store.turns, bodies)
    store.turns = None
    still = lifecycle.still_open(services, job_id)
    assert still is not None  # the reopen asked for work that nobody has done yet
    assert job_id in indexed(services)
    store.close()
