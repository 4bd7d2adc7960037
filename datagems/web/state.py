"""Per-app state of the web layer: resources built at start and released at stop."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from datagems.accounts.ratelimit import WindowLimiter
from datagems.models import JobDetails

DETAILS_CACHE_SIZE = 256


@dataclass
class Limiters:
    register_ip: WindowLimiter
    register_email: WindowLimiter
    resend_ip: WindowLimiter
    resend_email: WindowLimiter
    preview_user: WindowLimiter
    tasks: WindowLimiter  # new jobs per user (datagems.web.limits)


@dataclass
class WebState:
    """What the handlers share within one replica (nothing here is shared across replicas)."""

    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    preview_calls: int = 0
    preview_records_ok: int = 0
    preview_records_failed: int = 0
    drafts: int = 0
    drafts_failed_attempts: int = 0
    _details: OrderedDict[str, JobDetails] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cached_details(self, cid: str) -> JobDetails | None:
        """R1FS is content-addressed: a CID's details never change, so they are cached."""
        with self._lock:
            found = self._details.get(cid)
            if found is not None:
                self._details.move_to_end(cid)
            return found

    def remember_details(self, cid: str, details: JobDetails) -> None:
        with self._lock:
            self._details[cid] = details
            while len(self._details) > DETAILS_CACHE_SIZE:
                self._details.popitem(last=False)
