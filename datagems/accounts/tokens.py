"""Session and draft tokens (JWT, HS256, ``DATAGEN_SESSION_SECRET``) and the draft ledger.

The original DataGems signs both kinds with one secret and no claim telling them apart.
Here a session carries ``typ: "session"`` and a draft ``typ: "draft"``, and the readers
also look at the payload itself, so a token of one kind is never accepted as the other:

- ``read_session`` refuses ``typ == "draft"`` and anything carrying draft fields (the
  original's drafts have no ``typ``: a payload with ``schema`` or ``totalRecords`` is a
  draft, never a session). A session of the original (``{username, role}``, no ``typ``) is
  accepted.
- A session issued here carries ``cred``, an HMAC of the account's stored password record
  (``credential_stamp``): once the password changes (``resend``, an operator), the stamp no
  longer matches and the session is refused (``session_is_current``). Sessions of the
  original carry no stamp and stay valid until they expire.
- ``read_draft`` accepts only ``typ == "draft"`` bound (``sub``) to the calling user, with
  a ``jti`` for the confirm-once ledger.
- A password-reset link carries ``typ: "reset"``, the account (``sub``) and the stamp of
  the password it may replace (``cred``), for an hour: once the password changes (the link
  used, or any other change) or the account is deleted, the stamp no longer matches and the
  link is dead. Single use without any state kept, on every replica alike.
- ``token_digest`` names a session token in the revocation hash (``datagen:revoked-sessions``,
  ours): a signed-out token is refused by every replica until it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt

from datagems.errors import BadRequest, Conflict, ServiceUnavailable, Unauthorized
from datagems.models import now_iso, parse_iso
from datagems.store import keys
from datagems.store.base import CStore

SESSION_COOKIE = "datagen_session"
SESSION_TTL_SECONDS = 7 * 24 * 3600
DRAFT_TTL_SECONDS = 30 * 60
RESET_TTL_SECONDS = 60 * 60
ALGORITHM = "HS256"
LEEWAY_SECONDS = 30  # clock skew between replicas
DRAFT_MARKERS = frozenset({"schema", "totalRecords"})
RESERVED_CLAIMS = frozenset({"typ", "sub", "jti", "iat", "exp", "nbf", "username", "role", "cred"})
INVALID_DRAFT = "Invalid or expired draft"
INVALID_SESSION = "invalid or expired session"
BEING_CONFIRMED = "this draft is being confirmed by another request"
CLAIM_SETTLE_SECONDS = 0.25  # longer than a look and a write at the store take together
CLAIM_STALE_SECONDS = 120.0  # longer than any confirm takes
CLAIM_ATTEMPTS = 5  # looks again while a look and a write take longer than the wait
INVALID_RESET = (
    "this link is no longer valid (used, expired, or the password changed); ask for a new one"
)
# A fixed namespace: the job id of a draft is the same on every replica.
DRAFT_JOB_NAMESPACE = uuid.UUID("6f1d2c3e-8a4b-5c6d-9e0f-0a1b2c3d4e5f")


@dataclass(frozen=True)
class Session:
    username: str
    role: str
    cred: str | None = None  # None: a session of the original app, without a stamp
    expires: int | None = field(default=None, compare=False)  # epoch seconds


def _key(secret: str) -> bytes:
    if not secret:
        raise ValueError("the session secret is empty")
    return secret.encode("utf-8")


def _now(now: float | None) -> int:
    return int(time.time() if now is None else now)


def _decode(secret: str, token: str) -> dict[str, Any]:
    """Verified payload (signature, ``exp`` required, ``iat`` not in the future)."""
    if not isinstance(token, str) or not token:
        raise jwt.InvalidTokenError("no token")
    payload = jwt.decode(
        token,
        _key(secret),
        algorithms=[ALGORITHM],
        options={"require": ["exp"]},
        leeway=LEEWAY_SECONDS,
    )
    if not isinstance(payload, dict):
        raise jwt.InvalidTokenError("payload is not an object")
    return payload


def credential_stamp(secret: str, credential: str) -> str:
    """What a session says about the password it was issued under (``Account.credential``):
    keyed with the session secret, so the token tells nothing about the stored record."""
    mac = hmac.new(_key(secret), credential.encode("ascii"), hashlib.sha256)
    return mac.hexdigest()[:32]


def issue_session(
    secret: str, username: str, role: str, *, credential: str = "", now: float | None = None
) -> str:
    """A 7-day session token ``{username, role, typ: "session", jti, cred, iat, exp}``."""
    issued = _now(now)
    payload: dict[str, Any] = {
        "username": username,
        "role": role,
        "typ": "session",
        # every sign-in its own token, so signing one out never ends another
        "jti": secrets.token_urlsafe(12),
        "iat": issued,
        "exp": issued + SESSION_TTL_SECONDS,
    }
    if credential:
        payload["cred"] = credential_stamp(secret, credential)
    return jwt.encode(payload, _key(secret), algorithm=ALGORITHM)


def session_is_current(secret: str, session: Session, credential: str) -> bool:
    """False when the session was issued under a password the account no longer has."""
    if session.cred is None:
        return True
    return hmac.compare_digest(session.cred, credential_stamp(secret, credential))


def read_session(secret: str, token: str) -> Session:
    """The session in a token; ``Unauthorized`` for anything that is not a valid session."""
    try:
        payload = _decode(secret, token)
    except (jwt.InvalidTokenError, ValueError):
        raise Unauthorized(INVALID_SESSION) from None
    typ = payload.get("typ")
    if typ not in (None, "session") or DRAFT_MARKERS & payload.keys():
        raise Unauthorized(INVALID_SESSION)
    username = payload.get("username")
    role = payload.get("role")
    cred = payload.get("cred")
    if not isinstance(username, str) or not username or not isinstance(role, str):
        raise Unauthorized(INVALID_SESSION)
    if cred is not None and not isinstance(cred, str):
        raise Unauthorized(INVALID_SESSION)
    expires = payload.get("exp")
    return Session(
        username=username,
        role=role,
        cred=cred,
        expires=expires if isinstance(expires, int) else None,
    )


def issue_draft(
    secret: str, username: str, draft: dict[str, Any], *, now: float | None = None
) -> str:
    """A 30-minute draft token: the draft fields plus ``typ``, ``sub``, ``jti``, ``iat``, ``exp``.

    Reserved claims in ``draft`` (``typ``, ``sub``, ``jti``, ``iat``, ``exp``, ``nbf``,
    ``username``, ``role``) are dropped: a draft never looks like a session.
    """
    issued = _now(now)
    payload = {name: value for name, value in draft.items() if name not in RESERVED_CLAIMS}
    payload.update(
        {
            "typ": "draft",
            "sub": username,
            "jti": secrets.token_urlsafe(16),
            "iat": issued,
            "exp": issued + DRAFT_TTL_SECONDS,
        }
    )
    return jwt.encode(payload, _key(secret), algorithm=ALGORITHM)


def read_draft(secret: str, token: str, username: str) -> dict[str, Any]:
    """The draft payload (with its ``jti``), or ``BadRequest("Invalid or expired draft")``."""
    try:
        payload = _decode(secret, token)
    except (jwt.InvalidTokenError, ValueError):
        raise BadRequest(INVALID_DRAFT) from None
    jti = payload.get("jti")
    if (
        payload.get("typ") != "draft"
        or payload.get("sub") != username
        or not isinstance(jti, str)
        or not jti
    ):
        raise BadRequest(INVALID_DRAFT)
    return payload


def issue_reset(secret: str, username: str, credential: str, *, now: float | None = None) -> str:
    """A one-hour link token that may replace the password whose stamp it carries."""
    issued = _now(now)
    payload = {
        "typ": "reset",
        "sub": username,
        "cred": credential_stamp(secret, credential),
        "jti": secrets.token_urlsafe(12),
        "iat": issued,
        "exp": issued + RESET_TTL_SECONDS,
    }
    return jwt.encode(payload, _key(secret), algorithm=ALGORITHM)


@dataclass(frozen=True)
class ResetClaim:
    username: str
    cred: str


def read_reset(secret: str, token: str) -> ResetClaim:
    """The account a reset link is for; ``BadRequest`` for anything else. The caller still
    checks the stamp against the account (``reset_is_current``)."""
    try:
        payload = _decode(secret, token)
    except (jwt.InvalidTokenError, ValueError):
        raise BadRequest(INVALID_RESET) from None
    username, cred = payload.get("sub"), payload.get("cred")
    if (
        payload.get("typ") != "reset"
        or not isinstance(username, str)
        or not username
        or not isinstance(cred, str)
        or not cred
    ):
        raise BadRequest(INVALID_RESET)
    return ResetClaim(username, cred)


def reset_is_current(secret: str, claim: ResetClaim, credential: str) -> bool:
    """True while the account still has the password the link was issued under."""
    if not credential:  # no usable password (a deleted account): nothing to replace
        return False
    return hmac.compare_digest(claim.cred, credential_stamp(secret, credential))


def token_digest(token: str) -> str:
    """A session token's name in the revocation hash (the token itself is never stored)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:32]


def job_id_for_draft(jti: str) -> str:
    """The job id a draft becomes: the same on every replica (uuid5 of the draft's ``jti``)."""
    return str(uuid.uuid5(DRAFT_JOB_NAMESPACE, jti))


class DraftLedger:
    """Confirm-once across replicas: ``datagen:drafts-used`` maps a draft's ``jti`` to its job.

    The job id is derived from the ``jti`` (``job_id_for_draft``), so every confirm of one
    draft writes the same job. ``claim`` lets one request at a time work on it, without
    compare-and-set (Fischer's timed mutual exclusion): look (refuse a claim another request
    holds, unless it is older than ``CLAIM_STALE_SECONDS``: that request died), write
    ``{"jobId", "at", "nonce"}`` with a fresh nonce, wait ``CLAIM_SETTLE_SECONDS``, read it
    back. Whoever reads back its own nonce holds the draft. Two requests cannot both: the
    later writer looked before the earlier one's write landed, so its write lands within
    the earlier one's wait and the earlier one reads it back. That holds while a look and a
    write take less than the wait together; a request slower than that looks again.
    """

    def __init__(self, cstore: CStore) -> None:
        self.cstore = cstore

    def claimed(self, jti: str) -> dict[str, Any] | None:
        value = self.cstore.hget(keys.DRAFTS_USED, jti)
        if value is None:
            return None
        return value if isinstance(value, dict) else {"jobId": value}

    @staticmethod
    def stale(claim: dict[str, Any], *, now: float | None = None) -> bool:
        """Held longer than any confirm takes: the request that claimed it died."""
        at = parse_iso(claim.get("at") if isinstance(claim.get("at"), str) else None)
        if at is None:
            return True
        return _now(now) - at.timestamp() > CLAIM_STALE_SECONDS

    def claim(self, jti: str, job_id: str, *, settle: float = CLAIM_SETTLE_SECONDS) -> None:
        """Hold the draft for this request; ``Conflict`` while another request holds it."""
        if not jti:
            raise BadRequest(INVALID_DRAFT)
        nonce = secrets.token_hex(8)
        for _attempt in range(CLAIM_ATTEMPTS):
            started = time.monotonic()
            current = self.claimed(jti)
            if current is not None and current.get("nonce") != nonce and not self.stale(current):
                raise Conflict(BEING_CONFIRMED)
            self.cstore.hset(
                keys.DRAFTS_USED, jti, {"jobId": job_id, "at": now_iso(), "nonce": nonce}
            )
            if time.monotonic() - started > settle:
                continue  # too slow to be sure nobody looked in between: look again
            time.sleep(settle)
            back = self.claimed(jti)
            if back is None or back.get("nonce") != nonce:
                raise Conflict(BEING_CONFIRMED)
            return
        raise ServiceUnavailable("the store is too slow to confirm a job safely; try again")

    def finish(self, jti: str, job_id: str) -> None:
        """Mark the draft used for good once its job is written whole: a replay is refused
        even after the job is deleted (it would otherwise be resumed, made again)."""
        self.cstore.hset(keys.DRAFTS_USED, jti, {"jobId": job_id, "at": now_iso(), "done": True})

    def release(self, jti: str) -> None:
        """Forget a claim, when the job it was for could not be created at all."""
        self.cstore.hset(keys.DRAFTS_USED, jti, None)


class SessionRevocations:
    """Signed-out sessions, refused by every replica: ``datagen:revoked-sessions`` maps a
    token's digest (``token_digest``) to ``{"username", "exp"}``.

    Each field is written once, by the sign-out of that token, so no write is ever lost.
    A field is useless once its token has expired; a sign-out deletes a few such fields.
    """

    PRUNE_EVERY = 50  # sign-outs of this replica between two prunes
    PRUNE_MOST = 50

    def __init__(self, cstore: CStore) -> None:
        self.cstore = cstore
        self._count = 0

    def revoke(self, token: str, username: str, expires: int | None) -> None:
        expiry = expires if expires is not None else _now(None) + SESSION_TTL_SECONDS
        self.cstore.hset(
            keys.REVOKED_SESSIONS,
            token_digest(token),
            {"username": username, "exp": expiry + LEEWAY_SECONDS, "at": now_iso()},
        )
        self._count += 1
        if self._count % self.PRUNE_EVERY == 0:
            self.prune()

    def is_revoked(self, digest: str) -> bool:
        return self.cstore.hget_raw(keys.REVOKED_SESSIONS, digest) is not None

    def prune(self, *, now: float | None = None) -> int:
        """Delete (some of) the fields whose tokens have expired; how many."""
        current = _now(now)
        expired = []
        for digest, value in self.cstore.hgetall(keys.REVOKED_SESSIONS).items():
            exp = value.get("exp") if isinstance(value, dict) else None
            if isinstance(exp, int) and exp < current:
                expired.append(digest)
        for digest in expired[: self.PRUNE_MOST]:
            self.cstore.hset(keys.REVOKED_SESSIONS, digest, None)
        return min(len(expired), self.PRUNE_MOST)
