"""One export in its own process, so its peak memory is the export's own.

    python -m datagems.bench.export_probe --cstore URL --r1fs URL --peers '["a"]' \
        --job ID --format csv

Streams ``export_chunks`` over the devnode's CStore and R1FS to /dev/null and prints one
JSON line: seconds, bytes, and the process's RSS before and its peak (``VmHWM``).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time

import orjson
import psutil

from datagems.job.export import export_chunks
from datagems.services import Services
from datagems.settings import Settings


def high_water_kib() -> int:
    """Peak RSS of this process image: ``VmHWM`` (``ru_maxrss`` keeps the forked parent's)."""
    for line in open("/proc/self/status"):  # noqa: SIM115 - tiny, read once
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="datagems.bench.export_probe")
    parser.add_argument("--cstore", required=True)
    parser.add_argument("--r1fs", required=True)
    parser.add_argument("--peers", required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--format", required=True, choices=("json", "jsonl", "csv"))
    args = parser.parse_args(argv)
    peers = orjson.loads(args.peers)
    settings = Settings.from_env(
        {
            "R1EN_CHAINSTORE_PEERS": args.peers,
            "R1EN_HOST_ADDR": peers[0],
            "EE_CHAINSTORE_API_URL": args.cstore,
            "EE_R1FS_API_URL": args.r1fs,
            "DATAGEN_DATA_DIR": tempfile.gettempdir(),
        }
    )
    services = Services.open(settings, "http://127.0.0.1:1")
    rss_before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    size = 0
    with open("/dev/null", "wb") as sink:
        for chunk in export_chunks(services, args.job, args.format):
            size += len(chunk)
            sink.write(chunk)
    seconds = time.perf_counter() - started
    services.close()
    peak_kib = high_water_kib()
    sys.stdout.write(
        orjson.dumps(
            {
                "seconds": seconds,
                "bytes": size,
                "rssBeforeMb": rss_before / 2**20,
                "peakRssMb": peak_kib / 1024,
            }
        ).decode()
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
