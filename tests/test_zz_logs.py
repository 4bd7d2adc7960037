"""The suite's last check: no secret a test handed a server shows up in a server's log.

Every server process a test starts writes to ``tests/artifacts/logs/`` (``tests/servers.py``);
this scans the logs written during this run for every secret the tests gave those servers.
``tests/conftest.py`` moves this test to the end of the run.
"""

from __future__ import annotations

import pytest

from tests.fleet import TEST_SECRETS
from tests.servers import LOGS, RUN_STARTED
from tests.web.harness import USER_PASSWORD
from tests.web.test_fuzz import INFERENCE_TOKEN, PROFILE_KEY, R1FS_SECRET
from tests.web.test_hostile_input import SMTP_PASSWORD

# The recorded run of the original app: its test secrets are in the fixtures a replica reads.
CAPTURE_SECRETS = (
    "capture-session-secret-TEST-0123456789abcdef",
    "capture-pepper-TEST-secret",
    "CaptureBoot-Admin-1",
    "sk-capture-TEST-key-1",
    "sk-capture-TEST-key-2",
)
SECRETS = (
    *TEST_SECRETS,
    USER_PASSWORD,
    INFERENCE_TOKEN,
    PROFILE_KEY,
    R1FS_SECRET,
    SMTP_PASSWORD,
    *CAPTURE_SECRETS,
)


def test_no_server_log_of_this_run_holds_a_secret() -> None:
    logs = [p for p in LOGS.glob("*.log") if p.stat().st_mtime >= RUN_STARTED]
    if not logs:
        pytest.skip("no server was started in this run")
    leaks = [
        f"{path.name}: {secret[:4]}..."
        for path in logs
        for secret in SECRETS
        if secret in path.read_text(errors="replace")
    ]
    assert not leaks, f"secrets in server logs: {leaks}"
