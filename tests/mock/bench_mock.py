"""Throughput of ``datagems mock-llm``: 64 requests in flight for 3 s at latency 0.

    .venv/bin/python -m tests.inference.bench_mock [--seconds 3] [--in-flight 64] [--openai]

Starts the mock as a subprocess (so the client does not share its event loop), keeps
``--in-flight`` record requests (with a schema) outstanding and prints requests/s. Not a
test: it prints, it does not assert.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
import orjson

from datagems.bench.procs import datagems_command, free_port
from tests.servers import ServerProcess

SCHEMA = {
    "type": "object",
    "properties": {
        "full_name": {"type": "string"},
        "email": {"type": "string", "format": "email"},
        "age": {"type": "integer", "minimum": 18, "maximum": 90},
        "city": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
    "required": ["full_name", "email", "age", "city"],
}


async def drive(url: str, seconds: float, in_flight: int, openai: bool) -> tuple[int, int]:
    path = "/v1/chat/completions" if openai else "/create_chat_completion"
    fmt = (
        {"type": "json_schema", "json_schema": {"name": "record", "schema": SCHEMA}}
        if openai
        else {"type": "json_object", "schema": SCHEMA}
    )
    done = errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(slot: int) -> None:
            nonlocal done, errors
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                body = orjson.dumps(
                    {
                        "messages": [{"role": "user", "content": f"record {n} of many"}],
                        "response_format": fmt,
                        "metadata": {"seed": slot * 1_000_000 + n},
                    }
                )
                async with session.post(
                    url + path, data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    await response.read()
                    if response.status == 200:
                        done += 1
                    else:
                        errors += 1

        await asyncio.gather(*(worker(i) for i in range(in_flight)))
    return done, errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--openai", action="store_true")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with ServerProcess(
        "mock-llm-bench",
        datagems_command("mock-llm", "--port", str(port), "--seed", "1"),
        ready_url=f"{url}/stats",
    ):
        started = time.perf_counter()
        done, errors = asyncio.run(drive(url, args.seconds, args.in_flight, args.openai))
        elapsed = time.perf_counter() - started
    print(
        f"mock-llm {'openai' if args.openai else 'gateway'}: {done} ok, {errors} errors in "
        f"{elapsed:.2f} s with {args.in_flight} in flight -> {done / elapsed:.0f} requests/s"
    )


if __name__ == "__main__":
    main()
