"""Rate limits: a sliding window shared by every replica, and the sign-in limits built on it.

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

    def _read(self, digest: str, now: float) -> tuple[list[float], list[float], list[str]]:
        """(every replica's hits for the key in the window, this replica's, this replica's
        expired fields of other keys)."""
        since = now - self.window
        hits: list[float] = []
        mine: list[float] = []
        expired_mine: list[str] = []
        for name, value in self.cstore.hgetall(self.hkey).items():
            peer, _, field_digest = name.rpartition("|")
            recent = [t for t in _times(value) if since < t <= now + self.window]
            if field_digest == digest:
                hits.extend(recent)
                if peer == self.peer_id:
                    mine = recent
            elif peer == self.peer_id and not recent:
                expired_mine.append(name)
        return hits, mine, expired_mine

    def _refuse_if_full(self, hits: list[float], now: float) -> None:
        if len(hits) >= self.max_hits:
            hits = sorted(hits)
            # the limit lifts when enough of the oldest hits have left the window
            leaving = hits[len(hits) - self.max_hits]
            retry_after = max(1.0, leaving + self.window - now)
            raise RateLimited(
                f"too many requests; try again in {int(retry_after + 0.999)} s",
                retry_after=retry_after,
            )

    def _store(self, digest: str, mine: list[float], expired: list[str], now: float) -> None:
        mine = sorted([*mine, now])[-self.max_hits :]
        self.cstore.hset(self.hkey, self._field(digest), [round(t, 3) for t in mine])
        for name in expired[:PRUNE_PER_HIT]:
            self.cstore.hset(self.hkey, name, None)

    def hit(self, key: str, *, now: float | None = None) -> None:
        """Record a hit for ``key``, or raise ``RateLimited`` when the window is full."""
        now = time.time() if now is None else now
        digest = _key_digest(key)
        with self._lock:
            hits, mine, expired = self._read(digest, now)
            self._refuse_if_full(hits, now)
            self._store(digest, mine, expired, now)

    def check(self, key: str, *, now: float | None = None) -> None:
        """``RateLimited`` when the window of ``key`` is full; records nothing."""
        now = time.time() if now is None else now
        hits, _, _ = self._read(_key_digest(key), now)
        self._refuse_if_full(hits, now)

    def record(self, key: str, *, now: float | None = None) -> None:
        """Count one hit for ``key`` even when the window is full (``check`` refuses)."""
        now = time.time() if now is None else now
        digest = _key_digest(key)
        with self._lock:
            _, mine, expired = self._read(digest, now)
            self._store(digest, mine, expired, now)


class LoginLimits:
    """Failed sign-ins, counted across every replica, per account and per client address.

    An attempt is refused (``RateLimited``, 429 with ``Retry-After``) *before* its password
    is checked while the account has ``per_account`` failures in the window, or the
    address ``per_address``; the right password is refused too, or the refusal would tell
    a guesser when it guessed right. Only failures count, and nothing is slowed down: an
    attempt is answered at once, so a user behind an address someone else is guessing
    from is refused only once that address has used up its (larger) allowance. Unknown
    usernames count like known ones, so the answer tells nothing about who exists.
    Attempts checked at the same moment can pass the limit by as many as are in flight.
    """

    def __init__(
        self,
        cstore: CStore,
        *,
        peer_id: str,
        window_seconds: float,
        per_account: int,
        per_address: int,
    ) -> None:
        def limiter(scope: str, hits: int) -> WindowLimiter:
            return WindowLimiter(
                cstore, scope=scope, peer_id=peer_id, window_seconds=window_seconds, max_hits=hits
            )

        self.account = limiter("login-account", per_account)
        self.address = limiter("login-address", per_address)

    @staticmethod
    def _name(username: str) -> str:
        return (username or "").strip().lower()

    def check(self, username: str, address: str) -> None:
        try:
            self.account.check(self._name(username))
        except RateLimited as exc:
            raise RateLimited(
                f"too many failed sign-ins for this username; try again in {exc.retry_after} s",
                retry_after=exc.retry_after,
            ) from None
        try:
            self.address.check(address or "unknown")
        except RateLimited as exc:
            raise RateLimited(
                f"too many failed sign-ins from your address; try again in {exc.retry_after} s",
                retry_after=exc.retry_after,
            ) from None

    def failed(self, username: str, address: str) -> None:
        self.account.record(self._name(username))
        self.address.record(address or "unknown")
