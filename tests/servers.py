"""Shared test helpers: real server processes on 127.0.0.1 and condition waits.

Every process started here writes its output to ``tests/artifacts/logs/``; the suite's
last check (``tests/test_zz_logs.py``) scans those logs for secrets.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
LOGS = ARTIFACTS / "logs"
RUN_STARTED = time.time()  # logs written since belong to this run (tests/test_zz_logs.py)
T = TypeVar("T")


_GIVEN: set[int] = set()


def free_port() -> int:
    """A free port on 127.0.0.1, never one handed out before in this process: the OS hands a
    just-released port out again, and two servers of one fleet then collide."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def wait_until(
    predicate: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # the condition may fail while a server starts
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what or predicate}: {last_error}"
    )


def datagems_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "datagems", *args]


def base_env(**overrides: Any) -> dict[str, str]:
    """A clean environment for a child: no inherited DataGems/Ratio1 variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATAGEN_", "R1EN_", "EE_", "NEXT_PUBLIC_"))
        and key not in ("API_PORT", "LOG_INFERENCE_REQUESTS", "RETRY_INFERENCE_ON_FAILURE")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update({key: str(value) for key, value in overrides.items()})
    return env


class ServerProcess:
    """A child process serving HTTP on loopback, ready once ``ready_url`` answers 2xx."""

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        env: Mapping[str, str] | None = None,
        ready_url: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.env = dict(env) if env is not None else base_env()
        self.ready_url = ready_url
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"{name}-{int(time.time() * 1000)}.log"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd
        )
        log.close()
        if self.ready_url:
            wait_until(self._ready, timeout=timeout, what=f"{self.name} at {self.ready_url}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}: {self.output()}")
        return httpx.get(self.ready_url, timeout=1.0).is_success

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then wait; SIGKILL if it does not stop in time. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def kill(self) -> None:
        """kill -9."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
