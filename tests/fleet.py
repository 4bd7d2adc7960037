"""A local fleet on 127.0.0.1: a devnode, a mock LLM gateway and replica processes.

    with Fleet(tmp_path, peers=["a", "b", "c"]) as fleet:
        fleet.start_replicas()
        ...fleet.replicas["a"].url, fleet.cstore (an HttpCStore on the devnode)...

Every process is a real ``python -m datagems ...``; logs land in tests/artifacts/logs.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx

from datagems.bench.procs import (
    clean_env,
    datagems_command,
    devnode_command,
    free_port,
    replica_settings,
)
from datagems.store.http import HttpCStore, HttpR1FS
from tests.servers import ServerProcess

# Generated per run, as the README tells operators to (a replica refuses short or
# placeholder secrets at start); the pepper keeps a non-ASCII character on purpose.
SESSION_SECRET = secrets.token_urlsafe(48)
AUTH_PEPPER = "pepper-ß-" + secrets.token_urlsafe(24)
ADMIN_PASSWORD = "admin-" + secrets.token_urlsafe(18)
TEST_SECRETS = (SESSION_SECRET, AUTH_PEPPER, ADMIN_PASSWORD)


class Replica:
    def __init__(self, fleet: Fleet, peer: str, env: dict[str, str]) -> None:
        self.peer = peer
        self.port = int(env["DATAGEN_APP_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.process = ServerProcess(
            f"replica-{peer}",
            datagems_command("replica", "--peer-id", peer),
            env=env,
            ready_url=f"{self.url}/api/health",
        )

    def start(self) -> Replica:
        self.process = ServerProcess(
            self.process.name, self.process.command, env=self.env, ready_url=self.process.ready_url
        )
        self.process.start(timeout=40)
        return self

    def stop(self) -> int | None:
        return self.process.stop()

    def kill(self) -> None:
        self.process.kill()


class Fleet:
    """devnode + mock-llm + replicas sharing the devnode's CStore and R1FS."""

    def __init__(
        self,
        root: Path,
        peers: list[str] | tuple[str, ...] = ("a",),
        *,
        mock_args: tuple[str, ...] = (),
        replica_env: dict[str, Any] | None = None,
    ) -> None:
        self.root = Path(root)
        self.peers = list(peers)
        self.cstore_port, self.r1fs_port, self.llm_port = free_port(), free_port(), free_port()
        self.cstore_url = f"http://127.0.0.1:{self.cstore_port}"
        self.r1fs_url = f"http://127.0.0.1:{self.r1fs_port}"
        self.llm_url = f"http://127.0.0.1:{self.llm_port}"
        self.devnode = ServerProcess(
            "devnode",
            devnode_command(self.cstore_port, self.r1fs_port, self.root / "devnode"),
            ready_url=f"{self.cstore_url}/get_status",
        )
        self.mock_llm = ServerProcess(
            "mock-llm",
            datagems_command("mock-llm", "--port", str(self.llm_port), *mock_args),
            ready_url=f"{self.llm_url}/stats",
        )
        self.replica_env = dict(replica_env or {})
        self.replicas: dict[str, Replica] = {}
        self.cstore = HttpCStore(self.cstore_url, peers=self.peers, timeout=10)
        self.r1fs = HttpR1FS(self.r1fs_url, timeout=10)

    def env_for(self, peer: str) -> dict[str, str]:
        settings = replica_settings(
            peer,
            self.peers,
            cstore_url=self.cstore_url,
            r1fs_url=self.r1fs_url,
            gateway=self.llm_url,
            data_dir=self.root / f"replica-{peer}",
            session_secret=SESSION_SECRET,
            auth_pepper=AUTH_PEPPER,
            admin_password=ADMIN_PASSWORD,
        )
        settings.update(
            {
                "DATAGEN_PROGRESS_FLUSH_SECONDS": "0.2",
                "DATAGEN_ALLOW_PRIVATE_URLS": "true",
                "DATAGEN_MAX_RECORDS_PER_JOB": "100000",
                "DATAGEN_SHUTDOWN_GRACE_SECONDS": "3",
            }
        )
        settings.update(self.replica_env)
        return clean_env(**settings)

    def start(self) -> Fleet:
        self.devnode.start()
        self.mock_llm.start()
        return self

    def start_replicas(self, peers: list[str] | None = None) -> Fleet:
        for peer in peers or self.peers:
            replica = self.replicas.get(peer) or Replica(self, peer, self.env_for(peer))
            self.replicas[peer] = replica
            replica.start()
        return self

    def llm_stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.llm_url}/stats", timeout=5).json()

    def llm_config(self, **changes: Any) -> None:
        httpx.post(f"{self.llm_url}/config", json=changes, timeout=5).raise_for_status()

    def stop(self) -> None:
        for replica in self.replicas.values():
            replica.stop()
        self.mock_llm.stop()
        self.devnode.stop()
        self.cstore.close()
        self.r1fs.close()

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
