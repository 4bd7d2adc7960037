"""An OpenAPI-driven fuzz run: schemathesis generates requests for every operation of
``/api/openapi.json`` (valid ones and hostile ones) and sends them, signed in as the admin
with a Bearer token, to the real app on 127.0.0.1 (embedded store, mock gateway).

Every answer must hold: no 5xx but the deliberate 502/503 (so zero 500s); every error of
the API is JSON ``{"error": ...}`` (pages answer their errors with an HTML page, by design);
no body or header echoes a secret (session secret, pepper, admin password, the gateway and
R1FS secrets, an API key saved in a profile, the bearer token itself, except in the
``Set-Cookie`` of a successful login and the body of a successful ``/api/auth/token``,
the documented answers of those routes). The login throttle's waits are turned off for
the run (failed logins are fuzzed by the hundred; the throttle has its own tests).

Bounded: ``EXAMPLES`` positive and ``EXAMPLES`` negative cases per operation, no shrinking,
no example database; the whole run takes well under 90 s. Figures are printed at the end
(``pytest -s``) and written to ``tests/artifacts/fuzz.json``.
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr

from datagems.accounts.tokens import issue_session
from tests.fleet import ADMIN_PASSWORD, SESSION_SECRET, TEST_SECRETS
from tests.web.harness import LiveApp, confirm, finish_job, session_token

pytestmark = pytest.mark.timeout(150)

EXAMPLES = 30
INFERENCE_TOKEN = "gateway-token-fuzz-7f3a9c1e5b"
R1FS_SECRET = "r1fs-secret-fuzz-2d8e6b4a0c"
PROFILE_KEY = "sk-fuzz-profile-key-91b7e3d5"
SECRETS = (*TEST_SECRETS, INFERENCE_TOKEN, R1FS_SECRET, PROFILE_KEY)
ALLOWED_5XX = frozenset({502, 503})
ARTIFACT = Path(__file__).resolve().parents[1] / "artifacts" / "fuzz.json"


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@contextmanager
def loopback_only() -> Iterator[None]:
    """No name resolution (so no connection) beyond 127.0.0.1 while fuzzed URLs fly around:
    every client and the in-process app resolve through ``socket.getaddrinfo``."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK:
            raise socket.gaierror(socket.EAI_NONAME, f"{name[:40]}: not resolved in tests")
        return real(host, *args, **kwargs)

    socket.getaddrinfo = guarded
    try:
        yield
    finally:
        socket.getaddrinfo = real


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with loopback_only():
        app = LiveApp(
            Path(tmp_path_factory.mktemp("fuzz")),
            inference_token=SecretStr(INFERENCE_TOKEN),
            r1fs_secret=SecretStr(R1FS_SECRET),
            # failed logins are fuzzed by the hundred: the sign-in limits have their own tests
            login_max_failures_per_account=100_000,
            login_max_failures_per_address=100_000,
        ).start()
        assert app.app is not None
        yield app
        app.stop()


def _problems(
    method: str, path: str, answer: requests.Response, token: str, secrets: tuple[str, ...]
) -> list[str]:
    found: list[str] = []
    status = answer.status_code
    if status >= 500 and status not in ALLOWED_5XX:
        found.append(f"server error {status}")
    is_api = path.startswith("/api/") or path == "/metrics"
    if status >= 400 and is_api:
        try:
            payload = answer.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("error"), str):
            found.append(f"{status} error is not JSON {{'error': ...}}: {answer.text[:120]!r}")
    body = answer.content
    headers = "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
    for secret in secrets:
        if secret.encode() in body or secret in headers:
            found.append(f"echoes the secret {secret[:6]}…")
    in_cookie = path == "/api/auth/login" and status == 200  # Set-Cookie: its documented answer
    in_body = path == "/api/auth/token" and status == 200  # {"token": ...}: its documented answer
    if (token.encode() in body and not in_body) or (token in headers and not in_cookie):
        found.append("echoes the bearer token")
    return found


def test_fuzz_every_operation(fuzz_app: LiveApp) -> None:
    admin = fuzz_app.login("admin", ADMIN_PASSWORD)
    token = session_token(admin)
    bearer = {"Authorization": f"Bearer {token}"}
    credential = fuzz_app.accounts.get("admin").credential  # type: ignore[union-attr]

    def spare_session() -> str:
        """Another admin session, for the sign-out to end instead of the run's."""
        return issue_session(SESSION_SECRET, "admin", "admin", credential=credential)

    saved = httpx.post(
        f"{fuzz_app.url}/api/user/settings",
        headers=bearer,
        json={"name": "fuzz", "baseUrl": "http://127.0.0.1:9/v1", "apiKey": PROFILE_KEY},
    )
    assert saved.status_code == 200, saved.text
    drafted = httpx.post(
        f"{fuzz_app.url}/api/tasks/schema",
        headers=bearer,
        timeout=30,
        json={
            "title": "Fuzz",
            "totalRecords": 3,
            "description": "A small record for the fuzz run.",
            "instructions": "Keep it short.",
        },
    )
    assert drafted.status_code == 200, drafted.text
    draft_token = drafted.json()["draftToken"]
    readonly_job, mutable_job = confirm(admin), confirm(admin)
    for job_id in (readonly_job, mutable_job):
        finish_job(fuzz_app, job_id, [{"n": 1}, None, {"n": 3}, {"n": 4}, None, {"n": 6}])
    document = httpx.get(f"{fuzz_app.url}/api/openapi.json", headers=bearer).json()
    schema = schemathesis.openapi.from_dict(document)

    session = requests.Session()
    session.trust_env = False  # 127.0.0.1 only: no proxy from the environment
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    per_operation: dict[str, int] = {}
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(item) for item in document["paths"].values())

    timings: dict[str, float] = {}
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        count = 0
        op_started = time.monotonic()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy, real=st.booleans())
            def run(case: Any, real: bool) -> None:
                nonlocal count
                label = f"{case.method.upper()} {case.operation.path}"
                if real and isinstance(case.body, dict) and "draftToken" in case.body:
                    case.body["draftToken"] = draft_token  # reach past the token check
                if real and "id" in (case.path_parameters or {}) and "{id}" in label:
                    # reach past the 404: a finished job to read, another one to act on
                    chosen = readonly_job if case.method.upper() == "GET" else mutable_job
                    case.path_parameters = {**case.path_parameters, "id": chosen}
                if real and isinstance(case.body, dict) and "username" in case.body:
                    case.body["username"] = "admin" if count % 2 else "bob"
                headers = bearer
                if label == "POST /api/auth/logout":  # it ends the session it is sent with
                    headers = {"Authorization": f"Bearer {spare_session()}"}
                try:
                    answer = case.call(
                        base_url=fuzz_app.url, session=session, headers=headers, timeout=30
                    )
                except requests.RequestException as exc:
                    failures.append(f"{label}: transport error {exc!r}")
                    return
                except Exception as exc:  # the generated request could not even be sent
                    failures.append(
                        f"{label}: could not send {case.as_curl_command()[:300]}: {exc!r}"
                    )
                    return
                count += 1
                statuses[answer.status_code] += 1
                for problem in _problems(case.method, case.formatted_path, answer, token, SECRETS):
                    failures.append(f"{label}: {problem}\n    {case.as_curl_command()[:600]}")

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
                pass
            except Exception as exc:  # generation trouble must not hide the other operations
                causes = getattr(exc, "exceptions", ())  # a FlakyFailure names what it saw
                seen = "; ".join(f"{type(c).__name__}: {c}" for c in causes)
                failures.append(
                    f"{label} ({mode.value}): {type(exc).__name__}: {exc} [{seen}]"[:1200]
                )
        per_operation[label] = count
        timings[label] = round(time.monotonic() - op_started, 2)

    elapsed = time.monotonic() - started
    figures = {
        "operations": len(operations),
        "requests": sum(per_operation.values()),
        "examplesPerOperationAndMode": EXAMPLES,
        "statuses": dict(sorted(statuses.items())),
        "serverErrors": sum(n for s, n in statuses.items() if s >= 500 and s not in ALLOWED_5XX),
        "seconds": round(elapsed, 1),
        "perOperation": per_operation,
        "timings": timings,
        "failures": failures[:50],
    }
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(figures, indent=2))
    print(json.dumps({k: v for k, v in figures.items() if k != "perOperation"}, indent=2))
    assert not failures, "\n".join(failures[:20])
    assert all(per_operation.values()), per_operation
    assert figures["serverErrors"] == 0, figures["statuses"]
    # not vacuous: signed in, generated requests were served, and invalid ones refused
    assert statuses[200] and statuses[400] and statuses[404], figures["statuses"]
