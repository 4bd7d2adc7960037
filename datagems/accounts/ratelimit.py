"""Rate limits: a sliding window shared by every replica, and a per-replica login throttle.

``WindowLimiter`` counts hits without lost updates although CStore has no counters or
compare-and-set: one hash per scope (``datagen:ratelimit:{scope}``, a key of ours), one field
per (peer, key) written only by that peer, holding that peer's recent hit times; a check
sums the hits in the window over every peer's field for the key. The key (an IP address or
an e-mail address) is stored as a hash, not in clear.

A replica sees another's hits only once they have replicated, so a burst spread over
several replicas within the replication delay can exceed the limit by a little; it can
never lose a hit that has replicated.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from datagems.errors import RateLimited
from datagems.store.base import CStore

RATE_LIMIT_PREFIX = "datagen:ratelimit:"  # ours, not in datagems/store/keys.py
PRUNE_PER_HIT = 2  # at most this many expired fields of ours deleted per hit


def rate_limit_hkey(scope: str) -> str:
    return f"{RATE_LIMIT_PREFIX}{scope}"


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.strip().lower().encode("utf-8")).hexdigest()[:32]


def _times(value: Any) -> list[float]:
    if not isinstance(value, list):
        return []
    return [float(t) for t in value if isinstance(t, int | float) and not isinstance(t, bool)]


class WindowLimiter:
    """At most ``max_hits`` hits per key in any ``window_seconds``, across every replica."""

    def __init__(
        self,
        cstore: CStore,
        *,
        scope: str,
        peer_id: str,
        window_seconds: float,
        max_hits: int,
    ) -> None:
        if max_hits < 1 or window_seconds <= 0:
            raise ValueError("a window limiter needs max_hits >= 1 and a positive window")
        if "|" in peer_id:
            raise ValueError("a peer id used by the limiter cannot contain '|'")
        self.cstore = cstore
        self.scope = scope
        self.hkey = rate_limit_hkey(scope)
        self.peer_id = peer_id
        self.window = float(window_seconds)
        self.max_hits = max_hits
        self._lock = threading.Lock()

    def _field(self, digest: str) -> str:
        return f"{self.peer_id}|{digest}"

    def hit(self, key: str, *, now: float | None = None) -> None:
        """Record a hit for ``key``, or raise ``RateLimited`` when the window is full."""
        now = time.time() if now is None else now
        since = now - self.window
        digest = _key_digest(key)
        with self._lock:
            stored = self.cstore.hgetall(self.hkey)
            hits: list[float] = []
            mine: list[float] = []
            expired_mine: list[str] = []
            for name, value in stored.items():
                peer, _, field_digest = name.rpartition("|")
                recent = [t for t in _times(value) if since < t <= now + self.window]
                if field_digest == digest:
                    hits.extend(recent)
                    if peer == self.peer_id:
                        mine = recent
                elif peer == self.peer_id and not recent:
                    expired_mine.append(name)
            if len(hits) >= self.max_hits:
                hits.sort()
                # the limit lifts when enough of the oldest hits have left the window
                leaving = hits[len(hits) - self.max_hits]
                retry_after = max(1.0, leaving + self.window - now)
                raise RateLimited(
                    f"too many requests; try again in {int(retry_after + 0.999)} s",
                    retry_after=retry_after,
                )
            mine = sorted([*mine, now])[-self.max_hits :]
            self.cstore.hset(self.hkey, self._field(digest), [round(t, 3) for t in mine])
            for name in expired_mine[:PRUNE_PER_HIT]:
                self.cstore.hset(self.hkey, name, None)


class LoginThrottle:
    """Failed logins slowed down per username and per client IP, in memory per replica.

    After ``free_failures`` failures in a row, each further attempt waits
    ``base_delay * 2 ** (failures - free_failures)`` seconds, capped at ``max_delay``. A
    counter is forgotten ``forget_after`` seconds after its last failure; a success clears
    the username's counter (not the IP's: one good account must not reset an IP that is
    guessing others). At most ``max_entries`` counters are kept (oldest dropped first).
    """

    def __init__(
        self,
        *,
        free_failures: int = 3,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        forget_after: float = 900.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_entries = max_entries
        self._clock = clock
        self._counts: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _keys(username: str, ip: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return ("user", (username or "").strip().lower()), ("ip", ip or "unknown")

    def _failures(self, key: tuple[str, str], now: float) -> int:
        found = self._counts.get(key)
        if found is None:
            return 0
        count, last = found
        if now - last > self.forget_after:
            del self._counts[key]
            return 0
        return count

    def _delay(self, failures: int) -> float:
        over = failures - self.free_failures
        if over < 0:
            return 0.0
        return min(self.max_delay, self.base_delay * (2 ** min(over, 32)))

    def delay_for(self, username: str, ip: str) -> float:
        """Seconds to wait before checking this attempt's password."""
        now = self._clock()
        with self._lock:
            worst = max(self._failures(key, now) for key in self._keys(username, ip))
        return self._delay(worst)

    def failed(self, username: str, ip: str) -> None:
        now = self._clock()
        with self._lock:
            for key in self._keys(username, ip):
                self._counts[key] = (self._failures(key, now) + 1, now)
                self._counts.move_to_end(key)
            while len(self._counts) > self.max_entries:
                self._counts.popitem(last=False)

    def succeeded(self, username: str, ip: str) -> None:
        with self._lock:
            self._counts.pop(self._keys(username, ip)[0], None)
