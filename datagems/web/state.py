"""Per-app state of the web layer: resources built at start and released at stop."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from datagems.accounts.ratelimit import WindowLimiter


@dataclass
class Limiters:
    register_ip: WindowLimiter
    register_email: WindowLimiter
    resend_ip: WindowLimiter
    resend_email: WindowLimiter
    preview_user: WindowLimiter


EXPORT_THREADS = 8


@dataclass
class WebState:
    """What the handlers share within one replica (nothing here is shared across replicas).
    What they read from the stores is kept in ``datagems.web.cache``."""

    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    preview_calls: int = 0
    preview_records_ok: int = 0
    preview_records_failed: int = 0
    drafts: int = 0
    drafts_failed_attempts: int = 0
    # Exports read the stores in threads of their own: a stalled store leaves its reads
    # waiting here for the store's timeout, never in the threads every handler shares.
    export_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(EXPORT_THREADS, thread_name_prefix="export")
    )
