"""A stand-in for a peer of the original app (TypeScript DataGems 1.1.3), for mixed-fleet
tests: it writes what the original writes, when the recorded run shows it
(``tests/fixtures/ts-1.1.3-capture``, its README section 4), over the same HTTP APIs.

- **No heartbeat**, ever; it writes only its own peer state, the job base, the owner's
  summary and ``datagen:metrics`` (read-modify-write, as the original).
- Confirm (``confirm``, written by ``datagems.bench.original``, as the benchmark does):
  details (``add_json``, the original's key order, boolean ``datasetMode``,
  ``inference.baseUrl`` and ``path``), the base ``queued``, the summary, every peer's
  state, the metrics.
- Worker: every ``poll`` seconds it looks for a job (oldest first) whose base is not
  ``succeeded``/``failed`` and whose state of this peer has no ``resultCid``, and works it
  alone (**one job at a time**): ``startedAt`` (no ``lastUpdateAt``), the base ``running``
  if it is not; then the records of its range **one after the other**, one gateway call
  each, each line appended to its local file; ``lastUpdateAt`` with the counts after every
  K records, then the job's totals summed from all peer states into the base; at the end
  the slice and errors file to R1FS, the state with ``resultCid``, ``errorsCid``,
  ``finishedAt`` = ``lastUpdateAt``, and ``succeeded`` once every peer state is done.
  Restarted with lines in its local file, it first writes the counts from the file.
- **Deaf** to cancel requests, retry rounds and added records (it never reads them):
  results only in its own state.

``kill()`` stops it dead (no further write, like ``kill -9``); ``start()`` again resumes
from its local file.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import orjson

from datagems.bench.original import confirm_as_original
from datagems.models import now_iso, parse_iso
from datagems.store.http import HttpCStore, HttpR1FS

JOBS = "datagen:jobs"
METRICS = "datagen:metrics"
METRICS_DEFAULT = {
    "totalJobs": 0,
    "totalRecordsRequested": 0,
    "totalRecordsGenerated": 0,
    "activeJobs": 0,
    "failedJobs": 0,
    "lastJobAt": None,
}
SYSTEM = (
    "You generate one synthetic record as JSON that satisfies the given JSON Schema. "
    "Answer with the JSON object only."
)


class Killed(Exception):
    """The stand-in was killed: it writes nothing more."""


class OriginalPeer:
    def __init__(
        self,
        peer_id: str,
        peers: list[str],
        *,
        cstore_url: str,
        r1fs_url: str,
        gateway_url: str,
        cache_dir: Path,
        k: int = 5,
        poll_seconds: float = 0.2,
        record_seconds: float = 0.0,
    ) -> None:
        self.peer_id = peer_id
        self.peers = list(peers)
        self.gateway_url = gateway_url
        self.cache_dir = Path(cache_dir)
        self.k = k
        self.poll_seconds = poll_seconds
        self.record_seconds = record_seconds  # extra time per record: a slow model
        self.cstore = HttpCStore(cstore_url, peers=self.peers, timeout=10)
        self.r1fs = HttpR1FS(r1fs_url, timeout=10)
        self.calls = 0  # gateway calls made
        self.writes: list[tuple[str, str, dict[str, Any] | None]] = []  # (key, field, value)
        self.errors: list[str] = []
        self.polls = 0  # worker polls done
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life --------------------------------------------------------------------------
    def start(self) -> OriginalPeer:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"original-{self.peer_id}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def kill(self) -> None:
        """Stop at once: nothing more is written (a call in flight is dropped)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)

    def close(self) -> None:
        self.kill()
        self.cstore.close()
        self.r1fs.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.polls += 1
                job = self._next_job()
                if job is not None:
                    self._work(job)
            except Killed:
                return
            except Exception as exc:  # a store hiccup: the original logs and polls again
                self.errors.append(repr(exc))
            self._stop.wait(self.poll_seconds)

    # -- writes, as the original makes them ---------------------------------------------
    def _alive(self) -> None:
        if self._stop.is_set():
            raise Killed

    def _hset(self, hkey: str, field: str, value: dict[str, Any]) -> None:
        self._alive()
        self.cstore.hset(hkey, field, value)
        self.writes.append((hkey, field, orjson.loads(orjson.dumps(value))))  # as written

    def _set(self, key: str, value: dict[str, Any]) -> None:
        self._alive()
        self.cstore.set(key, value)
        self.writes.append((key, "", orjson.loads(orjson.dumps(value))))

    def _metrics(self, **changes: Any) -> None:
        """``get`` then ``set`` (the defaults first when missing): loses updates, like the
        original. ``changes``: name -> +n (int) or a new value (str)."""
        current = self.cstore.get(METRICS)
        if not isinstance(current, dict):
            current = dict(METRICS_DEFAULT)
            self._set(METRICS, current)
        updated = dict(current)
        for name, change in changes.items():
            if isinstance(change, int):
                updated[name] = max(0, int(updated.get(name) or 0) + change)
            else:
                updated[name] = change
        self._set(METRICS, updated)

    def _summary(self, base: dict[str, Any]) -> None:
        summary = {key: base[key] for key in ("id", "title", "status", "createdAt", "updatedAt")}
        self._hset(f"datagen:user:{base['owner']}:jobs", base["id"], summary)

    def _peer_states(self, job_id: str) -> dict[str, dict[str, Any]]:
        found = self.cstore.hgetall(f"datagen:job:{job_id}:peers")
        return {name: value for name, value in found.items() if isinstance(value, dict)}

    # -- confirm -------------------------------------------------------------------------
    def confirm(
        self,
        *,
        owner: str,
        title: str,
        total: int,
        schema: dict[str, Any],
        dataset_mode: bool = False,
        description: str = "A used bicycle listed for sale",
        instructions: str = "brand, model, year, price in EUR, condition",
    ) -> str:
        """``POST /api/tasks/confirm`` of the original, on this peer: returns the job id
        (the original's writes, in its order: ``datagems.bench.original``)."""
        self._alive()
        return confirm_as_original(
            self.cstore,
            self.r1fs,
            owner=owner,
            title=title,
            total=total,
            peers=self.peers,
            schema=schema,
            gateway_url=self.gateway_url,
            description=description,
            instructions=instructions,
            dataset_mode=dataset_mode,
        )

    # -- the worker ------------------------------------------------------------------------
    def _next_job(self) -> dict[str, Any] | None:
        jobs = [j for j in self.cstore.hgetall(JOBS).values() if isinstance(j, dict)]
        jobs.sort(key=lambda j: j.get("createdAt") or "")
        for job in jobs:
            if self.peer_id not in (job.get("peers") or []):
                continue
            if job.get("status") in ("succeeded", "failed"):
                continue
            state = self._peer_states(job["id"]).get(self.peer_id)
            if state is not None and not state.get("resultCid"):
                return job
        return None

    def _work(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        hkey = f"datagen:job:{job_id}:peers"
        state = self._peer_states(job_id)[self.peer_id]
        started = now_iso()
        state["startedAt"] = state.get("startedAt") or started
        self._hset(hkey, self.peer_id, state)
        base = self.cstore.hget(JOBS, job_id)
        if isinstance(base, dict) and base.get("status") != "running":
            base.update(status="running", jobStartedAt=started, updatedAt=started)
            self._hset(JOBS, job_id, base)
            self._summary(base)
            self._metrics(activeJobs=1, lastJobAt=started)
        try:
            details = self.r1fs.get_json(job["jobDetailsCid"])
        except Exception:
            self._fail(job_id, state)
            raise
        folder = self.cache_dir / job_id / self.peer_id
        folder.mkdir(parents=True, exist_ok=True)
        results = folder / "results.jsonl"
        lines = (
            [orjson.loads(x) for x in results.read_bytes().splitlines()] if results.exists() else []
        )
        done = {line["i"] for line in lines}
        ok = sum(1 for line in lines if line["ok"])
        failed = len(lines) - ok
        if lines:  # resumed: the counts from the file first
            state.update(generatedOk=ok, generatedFailed=failed, lastUpdateAt=now_iso())
            self._hset(hkey, self.peer_id, state)
        since_update = 0
        first, last = state["range"]["start"], state["range"]["end"]
        for index in range(first, last):
            if index in done:
                continue
            line = self._record(details, index)
            self._alive()
            with open(results, "ab") as out:
                out.write(orjson.dumps(line) + b"\n")
            lines.append(line)
            if line["ok"]:
                ok += 1
                self._metrics(totalRecordsGenerated=1)
            else:
                failed += 1
            since_update += 1
            if since_update >= self.k:
                since_update = 0
                state.update(generatedOk=ok, generatedFailed=failed, lastUpdateAt=now_iso())
                self._hset(hkey, self.peer_id, state)
                self._totals(job_id)
        self._finish(job_id, state, results, lines, ok, failed)

    def _record(self, details: dict[str, Any], index: int) -> dict[str, Any]:
        """One gateway call for record ``index``: ``{"i", "ok", "data"}`` or the error."""
        if self.record_seconds:
            self._stop.wait(self.record_seconds)
        self._alive()
        body = {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {
                    "role": "user",
                    "content": f"{details.get('description')}. Record {index + 1}. "
                    f"Schema: {orjson.dumps(details.get('schema')).decode()}",
                },
            ],
            "response_format": {"type": "json_object", "schema": details.get("schema")},
            "temperature": 0.7,
        }
        self.calls += 1
        try:
            answer = httpx.post(f"{self.gateway_url}/create_chat_completion", json=body, timeout=30)
        except httpx.HTTPError as exc:
            return {"i": index, "ok": False, "error": f"Inference call failed: {exc}"}
        if answer.status_code != 200:
            return {
                "i": index,
                "ok": False,
                "error": f"Inference call failed with status {answer.status_code}",
            }
        result = answer.json().get("result") or {}
        if result.get("error"):
            return {"i": index, "ok": False, "error": f"Inference result error: {result['error']}"}
        try:
            return {"i": index, "ok": True, "data": orjson.loads(result["TEXT_RESPONSE"])}
        except (KeyError, orjson.JSONDecodeError):
            return {"i": index, "ok": False, "error": "Failed to parse the model output as JSON"}

    def _totals(self, job_id: str) -> dict[str, Any] | None:
        """The job's totals summed from every peer state, into the base and summary."""
        states = self._peer_states(job_id).values()
        ok = sum(int(s.get("generatedOk") or 0) for s in states)
        failed = sum(int(s.get("generatedFailed") or 0) for s in states)
        base = self.cstore.hget(JOBS, job_id)
        if not isinstance(base, dict):
            return None
        base.update(totalOk=ok, totalFailed=failed, totalGenerated=ok + failed, updatedAt=now_iso())
        complete = all(
            int(s.get("generatedOk") or 0) + int(s.get("generatedFailed") or 0)
            >= int(s.get("assigned") or 0)
            and s.get("resultCid")
            for s in states
        )
        if complete:
            finished = now_iso()
            began = parse_iso(base.get("jobStartedAt")) or parse_iso(finished)
            took = parse_iso(finished) - began  # type: ignore[operator]
            base.update(
                status="succeeded",
                jobFinishedAt=finished,
                recordsDurationMs=round(took.total_seconds() * 1000),
                updatedAt=finished,
            )
        self._hset(JOBS, job_id, base)
        self._summary(base)
        if complete:
            self._metrics(activeJobs=-1)
        return base

    def _finish(
        self,
        job_id: str,
        state: dict[str, Any],
        results: Path,
        lines: list[dict[str, Any]],
        ok: int,
        failed: int,
    ) -> None:
        finished = now_iso()
        self._alive()
        result_cid = self.r1fs.add_file(results.read_bytes(), f"{job_id}_{self.peer_id}.jsonl")
        errors = [
            {"index": line["i"], "message": line["error"]} for line in lines if not line["ok"]
        ]
        errors_text = orjson.dumps(errors, option=orjson.OPT_INDENT_2) if errors else b"[]"
        errors_cid = self.r1fs.add_file(errors_text, f"{job_id}_{self.peer_id}_errors.json")
        state.update(
            generatedOk=ok,
            generatedFailed=failed,
            lastUpdateAt=finished,
            resultCid=result_cid,
            errorsCid=errors_cid,
            finishedAt=finished,
        )
        self._hset(f"datagen:job:{job_id}:peers", self.peer_id, state)
        self._totals(job_id)

    def _fail(self, job_id: str, state: dict[str, Any]) -> None:
        now = now_iso()
        state.update(finishedAt=now, lastUpdateAt=now)
        self._hset(f"datagen:job:{job_id}:peers", self.peer_id, state)
        base = self.cstore.hget(JOBS, job_id)
        if isinstance(base, dict):
            base.update(status="failed", jobFinishedAt=now, updatedAt=now)
            self._hset(JOBS, job_id, base)
            self._summary(base)
        self._metrics(failedJobs=1, activeJobs=-1)

    # -- for the tests ---------------------------------------------------------------------
    def state_writes(self, job_id: str) -> list[dict[str, Any]]:
        """The values of its own peer state it wrote for ``job_id``, in order."""
        hkey = f"datagen:job:{job_id}:peers"
        return [v for key, field, v in self.writes if key == hkey and field == self.peer_id and v]
