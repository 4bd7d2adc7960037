"""Where the tests' server processes log, and the process that logs there.

Processes are started the one way the benchmark starts them too
(``datagems.bench.procs``: ``free_port``, ``wait_until``, ``clean_env``,
``datagems_command``, ``Proc``); every process a test starts writes its output to
``tests/artifacts/logs/``, which the suite's last check (``tests/test_zz_logs.py``) scans
for secrets.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from datagems.bench.procs import Proc

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
LOGS = ARTIFACTS / "logs"
RUN_STARTED = time.time()  # logs written since belong to this run (tests/test_zz_logs.py)


class ServerProcess(Proc):
    """A ``Proc`` logging to ``tests/artifacts/logs``."""

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        env: Mapping[str, str] | None = None,
        ready_url: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        super().__init__(name, command, logs=LOGS, env=env, ready_url=ready_url, cwd=cwd)
