"""Real server processes on 127.0.0.1 for the benchmark: devnode, mock-llm, replicas.

The same approach as ``tests/fleet.py``, inside the package so ``datagems bench`` runs
from an installed copy: every process is ``python -m datagems ...`` with a clean
environment, its output goes to a log file under the results folder, it is ready once its
URL answers 2xx, and it is stopped with SIGTERM (SIGKILL after a bound).
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
import orjson

from datagems.settings import Settings

T = TypeVar("T")

SESSION_SECRET = "bench-session-secret-0123456789abcdef"
AUTH_PEPPER = "bench-pepper-secret-0123456789"
ADMIN_PASSWORD = "bench-Admin-Passw0rd"


class Timeout(Exception):
    """A scenario's condition did not hold within its bound."""


class Deadline:
    """The time bound of one scenario: every wait checks it, so nothing hangs."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return self.at - time.monotonic()

    def check(self, what: str) -> None:
        if self.left() <= 0:
            raise Timeout(f"{what}: over the {self.seconds:.0f} s bound")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], T],
    *,
    deadline: Deadline,
    interval: float = 0.05,
    what: str = "",
    timeout: float | None = None,
) -> T:
    """Poll ``predicate`` until truthy; ``Timeout`` at the deadline (or ``timeout``)."""
    limit = deadline.at if timeout is None else min(deadline.at, time.monotonic() + timeout)
    last_error: BaseException | None = None
    while time.monotonic() < limit:
        try:
            value = predicate()
        except Timeout:
            raise
        except Exception as exc:  # a server may still be starting
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise Timeout(f"waiting for {what or predicate}: {last_error or 'condition not met'}")


def clean_env(**overrides: Any) -> dict[str, str]:
    """The parent's environment without DataGems/Ratio1 variables, plus ``overrides``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATAGEN_", "R1EN_", "EE_", "NEXT_PUBLIC_"))
        and key not in ("API_PORT", "LOG_INFERENCE_REQUESTS", "RETRY_INFERENCE_ON_FAILURE")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def datagems_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "datagems", *args]


class Proc:
    """One child process serving HTTP on loopback."""

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        logs: Path,
        env: Mapping[str, str] | None = None,
        ready_url: str | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.env = dict(env) if env is not None else clean_env()
        self.ready_url = ready_url
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"{name}-{int(time.time() * 1000)}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, deadline: Deadline, timeout: float = 40.0) -> Proc:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        if self.ready_url:
            wait_until(
                self._ready, deadline=deadline, timeout=timeout, what=f"{self.name} to start"
            )
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-600:]
            raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {tail}")
        assert self.ready_url is not None
        return httpx.get(self.ready_url, timeout=1.0).is_success

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Stack:
    """A devnode, mock-llm gateways and replicas, stopped together (reverse order)."""

    def __init__(self, root: Path, logs: Path, deadline: Deadline) -> None:
        self.root = root
        self.logs = logs
        self.deadline = deadline
        self.procs: list[Proc] = []
        self.cstore_url = ""
        self.r1fs_url = ""
        self.peers: list[str] = []

    def _start(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc.start(self.deadline)

    def devnode(self) -> Stack:
        cport, rport = free_port(), free_port()
        self.cstore_url = f"http://127.0.0.1:{cport}"
        self.r1fs_url = f"http://127.0.0.1:{rport}"
        command = datagems_command(
            "devnode",
            "--cstore-port",
            str(cport),
            "--r1fs-port",
            str(rport),
            "--data-dir",
            str(self.root / "devnode"),
        )
        self._start(
            Proc("devnode", command, logs=self.logs, ready_url=f"{self.cstore_url}/get_status")
        )
        return self

    def mock_llm(
        self, *, latency_ms: float, max_concurrency: int = 0, name: str = "mock-llm"
    ) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        args = ["--port", str(port), "--latency-ms", str(latency_ms), "--seed", "1"]
        if max_concurrency:
            args += ["--max-concurrency", str(max_concurrency)]
        self._start(
            Proc(
                name, datagems_command("mock-llm", *args), logs=self.logs, ready_url=f"{url}/stats"
            )
        )
        return url

    def replica_env(self, peer: str, gateway: str, extra: Mapping[str, Any]) -> dict[str, str]:
        settings: dict[str, Any] = {
            "R1EN_HOST_ADDR": peer,
            "R1EN_CHAINSTORE_PEERS": orjson.dumps(self.peers).decode(),
            "EE_CHAINSTORE_API_URL": self.cstore_url,
            "EE_R1FS_API_URL": self.r1fs_url,
            "DATAGEN_INFERENCE_BASE_URL": gateway,
            "DATAGEN_DATA_DIR": str(self.root / f"replica-{peer}"),
            "DATAGEN_APP_PORT": free_port(),
            "DATAGEN_SESSION_SECRET": SESSION_SECRET,
            "R1EN_CSTORE_AUTH_SECRET": AUTH_PEPPER,
            "R1EN_CSTORE_AUTH_BOOTSTRAP_ADMIN_PWD": ADMIN_PASSWORD,
            "DATAGEN_JOB_POLL_SECONDS": "0.2",
            "DATAGEN_MAX_RECORDS_PER_JOB": "1000000",
            "DATAGEN_SHUTDOWN_GRACE_SECONDS": "2",
            "DATAGEN_LOG_LEVEL": "WARNING",
        }
        settings.update(extra)
        return clean_env(**settings)

    def replica(self, peer: str, gateway: str, extra: Mapping[str, Any]) -> tuple[Proc, str]:
        env = self.replica_env(peer, gateway, extra)
        url = f"http://127.0.0.1:{env['DATAGEN_APP_PORT']}"
        proc = Proc(
            f"replica-{peer}",
            datagems_command("replica", "--peer-id", peer),
            logs=self.logs,
            env=env,
            ready_url=f"{url}/api/health",
        )
        self._start(proc)
        return proc, url

    def settings(self) -> Settings:
        return Settings.from_env(
            {
                "R1EN_CHAINSTORE_PEERS": orjson.dumps(self.peers).decode(),
                "R1EN_HOST_ADDR": self.peers[0],
                "DATAGEN_DATA_DIR": str(self.root / "client"),
                "EE_CHAINSTORE_API_URL": self.cstore_url,
                "EE_R1FS_API_URL": self.r1fs_url,
            }
        )

    def devnode_stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.cstore_url}/__devnode/stats", timeout=10).json()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
