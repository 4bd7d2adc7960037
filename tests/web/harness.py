"""An in-process web app on 127.0.0.1 for the web tests: the real app over the embedded
store, with the mock gateway in the same background event loop. No engine runs here (the
end-to-end tests use ``tests.fleet.Fleet`` for that); tests that need records write the
peer states and slices themselves through the store layer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
from aiohttp import web
from pydantic import SecretStr

from datagems.accounts.users import Accounts
from datagems.bench.procs import free_port
from datagems.mock.server import start_mock
from datagems.services import Services
from datagems.settings import Settings
from datagems.web.app import create_app
from tests.fleet import ADMIN_PASSWORD, AUTH_PEPPER, SESSION_SECRET

T = TypeVar("T")
USER_PASSWORD = "user-Passw0rd-for-tests"


class LiveApp:
    """``create_app`` served by an ``AppRunner`` in a background thread's event loop."""

    def __init__(self, root: Path, **settings: Any) -> None:
        self.root = Path(root)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.overrides = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.mock_runner: web.AppRunner | None = None
        self.services: Services | None = None
        self.app: web.Application | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> LiveApp:
        self.thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        self.mock_runner, gateway = await start_mock("127.0.0.1", 0)
        fields: dict[str, Any] = {
            "data_dir": self.root / "data",
            "local_cache_dir": self.root / "cache",
            "session_secret": SecretStr(SESSION_SECRET),
            "auth_secret": SecretStr(AUTH_PEPPER),
            "inference_base_url": gateway,
            "allow_private_urls": True,
            "app_port": self.port,
            # no engine runs here: jobs stay queued, so the per-user caps are lifted
            # unless a test sets them
            "task_max_per_window": 10_000,
            "max_running_jobs_per_user": 10_000,
        }
        fields.update(self.overrides)
        settings = Settings().replace(**fields)
        self.services = Services.open(settings, gateway)
        accounts = self.accounts
        accounts.bootstrap_admin(ADMIN_PASSWORD)
        for name in ("alice", "bob"):
            if accounts.get(name) is None:
                accounts.create(name, USER_PASSWORD)
        self.app = create_app(self.services)
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=5)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    @property
    def accounts(self) -> Accounts:
        assert self.services is not None
        settings = self.services.settings
        assert settings.auth_secret is not None
        return Accounts(
            self.services.cstore, settings.auth_hkey, settings.auth_secret.get_secret_value()
        )

    def stop(self) -> None:
        async def _stop() -> None:
            if self.runner:
                await self.runner.cleanup()
            if self.mock_runner:
                await self.mock_runner.cleanup()

        self.run(_stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if self.services:
            self.services.close()

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client that behaves like the dashboard's pages: same Origin on every request."""
        headers = {"Origin": self.url, **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def login(self, username: str, password: str = USER_PASSWORD) -> httpx.Client:
        client = self.client()
        answer = client.post("/api/auth/login", json={"username": username, "password": password})
        assert answer.status_code == 200, answer.text
        return client


def session_token(client: httpx.Client) -> str:
    token = client.cookies.get("datagen_session")
    assert token
    return token


def draft(client: httpx.Client, **changes: Any) -> dict[str, Any]:
    body = {
        "title": "Support tickets",
        "totalRecords": 6,
        "description": "A customer support ticket with a subject, a body and a priority.",
        "instructions": "Vary the tone and the product. Priority is low, normal or high.",
    }
    body.update(changes)
    answer = client.post("/api/tasks/schema", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def eventually(check: Callable[[], T], what: str, timeout: float = 30) -> T:
    from datagems.bench.procs import wait_until

    return wait_until(check, timeout=timeout, what=what)


def confirm(client: httpx.Client, **changes: Any) -> str:
    drafted = draft(client, **changes)
    answer = client.post("/api/tasks/confirm", json={"draftToken": drafted["draftToken"]})
    assert answer.status_code == 200, answer.text
    return answer.json()["jobId"]


def finish_job(live: LiveApp, job_id: str, records: list[Any], *, upload: bool = True) -> None:
    """Play the engine for a one-peer job: upload the slice and mark the peer complete.

    ``records[i]`` is the data of record ``i``, or ``None`` for a failed record.
    """
    from datagems.models import InFlightRecord, now_iso

    services = live.services
    assert services is not None
    state = services.peers.get(job_id, services.settings.host_addr)
    assert state is not None
    lines = []
    for index, data in enumerate(records):
        entry = (
            {"i": index, "ok": True, "data": data}
            if data is not None
            else {
                "i": index,
                "ok": False,
                "error": "schema validation failed: <b>bad</b>",
            }
        )
        lines.append(orjson.dumps(entry))
    state.generated_ok = sum(1 for r in records if r is not None)
    state.generated_failed = sum(1 for r in records if r is None)
    state.started_at = state.started_at or now_iso()
    if upload:
        body = b"\n".join(lines) + b"\n"
        state.result_cid = services.r1fs.add_file(
            body, f"{job_id}_{state.peer_id}.jsonl", secret=services.r1fs_secret
        )
        state.finished_at = now_iso()
        state.in_flight = []
    else:
        state.in_flight = [
            InFlightRecord(i=len(records), attempt=2, state="retrying", reason="invalid_json")
        ]
    if state.generated_failed:
        state.failure_reasons = {"schema_violation": state.generated_failed}
    services.peers.put(job_id, state)
