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
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from datagems.errors import BadRequest, Conflict, ServiceUnavailable, Unauthorized
from datagems.models import now_iso, parse_iso
from datagems.store import keys
from datagems.store.base import CStore

SESSION_COOKIE = "datagen_session"
SESSION_TTL_SECONDS = 7 * 24 * 3600
DRAFT_TTL_SECONDS = 30 * 60
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
# A fixed namespace: the job id of a draft is the same on every replica.
DRAFT_JOB_NAMESPACE = uuid.UUID("6f1d2c3e-8a4b-5c6d-9e0f-0a1b2c3d4e5f")


@dataclass(frozen=True)
class Session:
    username: str
    role: str
    cred: str | None = None  # None: a session of the original app, without a stamp


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
    """A 7-day session token ``{username, role, typ: "session", cred, iat, exp}``."""
    issued = _now(now)
    payload: dict[str, Any] = {
        "username": username,
        "role": role,
        "typ": "session",
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
    return Session(username=username, role=role, cred=cred)


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

    def release(self, jti: str) -> None:
        """Forget a claim, when the job it was for could not be created at all."""
        self.cstore.hset(keys.DRAFTS_USED, jti, None)
