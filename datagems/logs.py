"""Logging set-up: one line per event, on stderr, with the peer id."""

from __future__ import annotations

import logging


def configure(level: str = "INFO", peer_id: str = "-") -> None:
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s %(levelname)s [{peer_id}] %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
