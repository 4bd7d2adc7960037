"""A ``datagems mock-llm`` subprocess shared by the inference tests, reset after each test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from datagems.bench.procs import datagems_command, free_port
from tests.servers import ServerProcess

QUIET = {
    "latencyMs": 0,
    "jitterMs": 0,
    "failRate": 0,
    "invalidRate": 0,
    "schemaViolationRate": 0,
    "rateLimitRate": 0,
    "maxConcurrency": 0,
    # behaviours of real servers (datagems.mock.modes)
    "refuseJsonSchema": False,
    "echoSchemaRate": 0,
    "exampleDraft": False,
    "runawayRate": 0,
    "tokenLatencyMs": 0,
    "copyOnRepair": False,
    "controlCharsRate": 0,
    "seededAnswers": False,
    "hugeAnswerMb": 0,
}


class MockLLMProcess:
    def __init__(self, url: str) -> None:
        self.url = url

    def config(self, **changes: object) -> dict:
        response = httpx.post(f"{self.url}/config", json=changes, timeout=5)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/stats", timeout=5).json()

    def requests(self) -> list[dict]:
        return httpx.get(f"{self.url}/requests", timeout=5).json()

    def reset(self) -> None:
        self.config(**QUIET)
        httpx.post(f"{self.url}/stats/reset", timeout=5).raise_for_status()


@pytest.fixture(scope="session")
def mock_llm_process() -> Iterator[MockLLMProcess]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        "mock-llm-inference-tests",
        datagems_command("mock-llm", "--port", str(port), "--seed", "7"),
        ready_url=f"{url}/stats",
    )
    with server:
        yield MockLLMProcess(url)


@pytest.fixture
def mock_llm(mock_llm_process: MockLLMProcess) -> Iterator[MockLLMProcess]:
    mock_llm_process.reset()
    yield mock_llm_process
    mock_llm_process.reset()
