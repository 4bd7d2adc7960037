"""Store fixtures: one devnode process for the module that asks for it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from datagems.bench.procs import clean_env, devnode_command, free_port, wait_until
from tests.servers import ServerProcess


@dataclass
class DevNode:
    process: ServerProcess
    cstore_url: str
    r1fs_url: str

    def faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the injected faults (``{}`` clears them)."""
        answer = httpx.post(f"{self.cstore_url}/__devnode/faults", json=faults, timeout=5)
        answer.raise_for_status()
        return answer.json()["faults"]

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.cstore_url}/__devnode/stats", timeout=5).json()

    def reset_stats(self) -> None:
        httpx.delete(f"{self.cstore_url}/__devnode/stats", timeout=5).raise_for_status()


def start_devnode(data_dir: Path) -> DevNode:
    cstore_port, r1fs_port = free_port(), free_port()
    process = ServerProcess(
        "devnode",
        devnode_command(cstore_port, r1fs_port, data_dir),
        env=clean_env(),
        ready_url=f"http://127.0.0.1:{cstore_port}/get_status",
    )
    process.start()
    r1fs_url = f"http://127.0.0.1:{r1fs_port}"
    # both sites start in one loop, the R1FS one second: wait for it as well
    wait_until(lambda: httpx.get(f"{r1fs_url}/get_status", timeout=1).is_success, what="R1FS")
    return DevNode(process, f"http://127.0.0.1:{cstore_port}", r1fs_url)


@pytest.fixture(scope="module")
def devnode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevNode]:
    node = start_devnode(tmp_path_factory.mktemp("devnode"))
    try:
        yield node
    finally:
        node.process.stop()


@pytest.fixture
def clean_devnode(devnode: DevNode) -> Iterator[DevNode]:
    """The module's devnode with no faults and fresh counts, cleared again afterwards."""
    devnode.faults()
    devnode.reset_stats()
    try:
        yield devnode
    finally:
        devnode.faults()
