"""Real server processes on 127.0.0.1: devnode, mock-llm, replicas, started one way for
the benchmark and the tests (``tests/servers.py``, ``tests/fleet.py`` build on this).

Every process is ``python -m datagems ...`` with a clean environment, its output goes to a
log file, it is ready once its URL answers 2xx, and it is stopped with SIGTERM (SIGKILL
after a bound). It lives in the package so ``datagems bench`` runs from an installed copy.
"""

from __future__ import annotations

import math
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


class Timeout(AssertionError):
    """A condition did not hold within its bound (a test fails on it as on an assert)."""


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


_GIVEN: set[int] = set()


def free_port() -> int:
    """A free port on 127.0.0.1, never one handed out before in this process: the OS hands a
    just-released port out again, and two servers of one fleet then collide."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float | None = None,
    interval: float = 0.05,
    what: str = "",
    deadline: Deadline | None = None,
) -> T:
    """Poll ``predicate`` until truthy; ``Timeout`` after ``timeout`` seconds (30 without a
    ``deadline``) or at the deadline, whichever comes first."""
    if timeout is None and deadline is None:
        timeout = 30.0
    limit = time.monotonic() + timeout if timeout is not None else math.inf
    if deadline is not None:
        limit = min(limit, deadline.at)
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
    bound = f"after {timeout}s " if timeout is not None else ""
    raise Timeout(f"timed out {bound}waiting for {what or predicate}: {last_error}")


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
    """One child process serving HTTP on loopback, ready once ``ready_url`` answers 2xx;
    its output goes to ``logs/{name}-{ms}.log``."""

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        logs: Path,
        env: Mapping[str, str] | None = None,
        ready_url: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.env = dict(env) if env is not None else clean_env()
        self.ready_url = ready_url
        self.cwd = cwd
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"{name}-{int(time.time() * 1000)}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, deadline: Deadline | None = None, timeout: float = 40.0) -> Proc:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd
            )
        if self.ready_url:
            wait_until(
                self._ready, deadline=deadline, timeout=timeout, what=f"{self.name} to start"
            )
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited {self.proc.returncode}: {self.output()[-2000:]}"
            )
        assert self.ready_url is not None
        return httpx.get(self.ready_url, timeout=1.0).is_success

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

    def __enter__(self) -> Proc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def devnode_command(cstore_port: int, r1fs_port: int, data_dir: Path) -> list[str]:
    """``datagems devnode`` serving CStore and R1FS on these ports, its data in ``data_dir``."""
    return datagems_command(
        "devnode",
        "--cstore-port",
        str(cstore_port),
        "--r1fs-port",
        str(r1fs_port),
        "--data-dir",
        str(data_dir),
    )


def replica_settings(
    peer: str,
    peers: list[str],
    *,
    cstore_url: str,
    r1fs_url: str,
    gateway: str,
    data_dir: Path,
    session_secret: str = SESSION_SECRET,
    auth_pepper: str = AUTH_PEPPER,
    admin_password: str = ADMIN_PASSWORD,
) -> dict[str, Any]:
    """The environment of replica ``peer`` of a local fleet (before ``clean_env``): its
    peer id and the fleet's, the devnode's CStore and R1FS, the gateway, its own data
    folder and port, the secrets, and a job poll fast enough for short runs."""
    return {
        "R1EN_HOST_ADDR": peer,
        "R1EN_CHAINSTORE_PEERS": orjson.dumps(peers).decode(),
        "EE_CHAINSTORE_API_URL": cstore_url,
        "EE_R1FS_API_URL": r1fs_url,
        "DATAGEN_INFERENCE_BASE_URL": gateway,
        "DATAGEN_DATA_DIR": str(data_dir),
        "DATAGEN_APP_PORT": free_port(),
        "DATAGEN_SESSION_SECRET": session_secret,
        "R1EN_CSTORE_AUTH_SECRET": auth_pepper,
        "R1EN_CSTORE_AUTH_BOOTSTRAP_ADMIN_PWD": admin_password,
        "DATAGEN_JOB_POLL_SECONDS": "0.2",
    }


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
        command = devnode_command(cport, rport, self.root / "devnode")
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
        settings = replica_settings(
            peer,
            self.peers,
            cstore_url=self.cstore_url,
            r1fs_url=self.r1fs_url,
            gateway=gateway,
            data_dir=self.root / f"replica-{peer}",
        )
        settings.update(
            {
                "DATAGEN_MAX_RECORDS_PER_JOB": "1000000",
                "DATAGEN_SHUTDOWN_GRACE_SECONDS": "2",
                "DATAGEN_LOG_LEVEL": "WARNING",
            }
        )
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
