"""Users in CStore, the cstore-auth way: one hash, field = canonical username.

The hash is named by ``R1EN_CSTORE_AUTH_HKEY`` (``Settings.auth_hkey``); a field's value is
the JSON text of::

    {"type": "simple", "password": {<passwords.hash_password>}, "role": "admin" | "user",
     "metadata": {}, "createdAt": "...Z", "updatedAt": "...Z"}

so an account created here signs in on the original DataGems (and the other way round).
Every login failure, whatever its cause, is the same ``Unauthorized("invalid username or
password")``, and an unknown user costs one hash like a known one.

A deleted account is kept, as the original does it: ``password: null`` and
``__datagemsDeleted``, ``__datagemsDeletedAt``, ``__datagemsDeletedBy`` in its metadata. Its
field stays in the hash, so its username is never given to anyone else; a purged account
keeps only that tombstone (no name, no address).

CStore has no compare-and-set: two writers of one field both succeed and the last write
wins. Registration (``accounts.registration``) therefore derives the username from the
e-mail address, so two people never write the same field.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson

from datagems.accounts.passwords import hash_password, verify_password
from datagems.errors import BadRequest, Conflict, NotFound, Unauthorized
from datagems.models import now_iso
from datagems.store.base import CStore, decode_value

logger = logging.getLogger(__name__)

USERNAME_RE = r"^[a-z0-9._-]{3,64}$"
_USERNAME = re.compile(USERNAME_RE)
ROLES = ("admin", "user")
ADMIN = "admin"
DELETED = "__datagemsDeleted"
DELETED_AT = "__datagemsDeletedAt"
DELETED_BY = "__datagemsDeletedBy"
PURGED = "__datagemsPurged"  # ours: the account's data was removed with it
LOGIN_FAILED = "invalid username or password"
MAX_PASSWORD_CHARS = 1024


def canonical_username(raw: str) -> str:
    """Trimmed and lower-cased; ``BadRequest`` unless it matches ``USERNAME_RE``."""
    if not isinstance(raw, str):
        raise BadRequest("username must be a string")
    name = raw.strip().lower()
    if not _USERNAME.fullmatch(name):
        raise BadRequest(
            "username must be 3 to 64 characters: lower-case letters, digits, '.', '_' or '-'"
        )
    return name


def generate_password() -> str:
    """A random password for a new account (about 96 bits, URL-safe characters)."""
    return secrets.token_urlsafe(12)


@dataclass(frozen=True)
class Account:
    username: str
    role: str
    created_at: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False  # soft-deleted: kept as a tombstone, never signs in
    # A digest of the stored password record: it changes with every new password, so a
    # session issued before the change can be told apart (``tokens.credential_stamp``).
    credential: str = field(default="", repr=False, compare=False)


def _credential(stored: Any) -> str:
    if not isinstance(stored, dict):
        return ""
    text = orjson.dumps(stored, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(text, digest_size=16).hexdigest()


def _record(value: Any) -> dict[str, Any] | None:
    """A stored user record as a dict, tolerating doubly-encoded JSON text."""
    if isinstance(value, str):
        value = decode_value(value)
    return value if isinstance(value, dict) else None


def _account(username: str, record: dict[str, Any]) -> Account:
    role = record.get("role")
    metadata = record.get("metadata")
    created = record.get("createdAt")
    return Account(
        username=username,
        role=role if role in ROLES else "user",
        created_at=created if isinstance(created, str) else None,
        metadata=dict(metadata) if isinstance(metadata, dict) else {},
        deleted=isinstance(metadata, dict) and metadata.get(DELETED) is True,
        credential=_credential(record.get("password")),
    )


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not password:
        raise BadRequest("password must not be empty")
    if len(password) > MAX_PASSWORD_CHARS:
        raise BadRequest(f"password must be at most {MAX_PASSWORD_CHARS} characters")


class Accounts:
    """The cstore-auth users hash. Blocking (CStore calls, ~50 ms hashes): run in a thread."""

    def __init__(self, cstore: CStore, hkey: str, pepper: str) -> None:
        self.cstore = cstore
        self.hkey = hkey
        self._pepper = pepper
        self._dummy: dict[str, Any] | None = None
        self._dummy_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the pepper
        return f"Accounts(hkey={self.hkey!r})"

    # -- reading ---------------------------------------------------------------------
    def _load(self, username: str) -> dict[str, Any] | None:
        return _record(self.cstore.hget(self.hkey, username))

    def get(self, username: str) -> Account | None:
        """The account, or ``None`` when unknown (or the name is not a valid username)."""
        try:
            name = canonical_username(username)
        except BadRequest:
            return None
        record = self._load(name)
        return _account(name, record) if record is not None else None

    def all(self) -> list[Account]:
        """Every account with a readable record, by username."""
        found = []
        for name, value in self.cstore.hgetall(self.hkey).items():
            record = _record(value)
            if record is None:
                logger.warning("ignoring user record %s: not a JSON object", name)
                continue
            found.append(_account(name, record))
        return sorted(found, key=lambda account: account.username)

    # -- writing ---------------------------------------------------------------------
    def _write(self, username: str, record: dict[str, Any]) -> None:
        self.cstore.hset(self.hkey, username, record)

    def hash(self, password: str) -> dict[str, Any]:
        """The stored password object for ``password`` (~50 ms: call it in a thread)."""
        _check_password(password)
        return hash_password(password, self._pepper)

    def create(
        self,
        username: str,
        password: str,
        role: str = "user",
        metadata: dict[str, Any] | None = None,
    ) -> Account:
        """A new account; ``Conflict`` when the username is taken (deleted ones too)."""
        name = canonical_username(username)
        if role not in ROLES:
            raise BadRequest(f"role must be one of {', '.join(ROLES)}")
        hashed = self.hash(password)
        if self._load(name) is not None:
            raise Conflict(f"user {name} already exists")
        return self.write_new(name, hashed, role=role, metadata=metadata)

    def write_new(
        self,
        username: str,
        hashed: dict[str, Any],
        *,
        role: str = "user",
        metadata: dict[str, Any] | None = None,
    ) -> Account:
        """Write a new account record without looking first (the caller has, and checks
        the result by reading it back: ``Account.credential`` tells whose write won)."""
        stamp = now_iso()
        record = {
            "type": "simple",
            "password": hashed,
            "role": role,
            "metadata": dict(metadata or {}),
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        self._write(username, record)
        return _account(username, record)

    def set_password(self, username: str, password: str) -> None:
        """Replace the password, keeping role, metadata and creation time; ``NotFound``
        when there is no account or it was deleted."""
        name = canonical_username(username)
        _check_password(password)
        record = self._load(name)
        if record is None or _account(name, record).deleted:
            raise NotFound(f"user {name} not found")
        updated = dict(record)
        updated["password"] = hash_password(password, self._pepper)
        updated["updatedAt"] = now_iso()
        updated.setdefault("type", "simple")
        self._write(name, updated)

    def soft_delete(self, username: str, by: str, *, purge: bool = False) -> None:
        """Delete as the original does: ``password: null`` and the ``__datagemsDeleted*``
        metadata; the record stays, so the username is never reused. ``purge`` also drops
        the personal metadata (name, address, country). ``NotFound`` when there is none."""
        name = canonical_username(username)
        record = self._load(name)
        if record is None:
            raise NotFound(f"user {name} not found")
        updated = dict(record)
        metadata = record.get("metadata")
        kept = dict(metadata) if isinstance(metadata, dict) and not purge else {}
        stamp = now_iso()
        kept.update({DELETED: True, DELETED_AT: stamp, DELETED_BY: by})
        if purge:
            kept[PURGED] = True
        updated.update(password=None, metadata=kept, updatedAt=stamp)
        updated.setdefault("type", "simple")
        self._write(name, updated)

    # -- login -----------------------------------------------------------------------
    def _dummy_record(self) -> dict[str, Any]:
        """A record no password matches, so an unknown user costs one hash too."""
        with self._dummy_lock:
            if self._dummy is None:
                self._dummy = hash_password(secrets.token_urlsafe(32), self._pepper)
            return self._dummy

    def authenticate(self, username: str, password: str) -> Account:
        """The account for these credentials; the same ``Unauthorized`` for every failure."""
        try:
            name = canonical_username(username)
        except BadRequest:
            name = None
        record = self._load(name) if name is not None else None
        stored = record.get("password") if record is not None else None
        ok = False
        usable = isinstance(stored, dict) and stored.get("algo") in ("argon2id", "scrypt")
        if usable and isinstance(password, str):
            ok = verify_password(password, stored, self._pepper)
        else:  # unknown user or unusable record: hash anyway, so the cost is the same
            dummy = self._dummy_record()
            verify_password(password if isinstance(password, str) else "", dummy, self._pepper)
        if not ok or record is None or name is None:
            raise Unauthorized(LOGIN_FAILED)
        return _account(name, record)

    # -- first start -----------------------------------------------------------------
    def bootstrap_admin(self, password: str | None) -> str | None:
        """Create ``admin`` once if absent; never overwrite it.

        With ``password`` (``R1EN_CSTORE_AUTH_BOOTSTRAP_ADMIN_PWD``) the account gets it and
        ``None`` is returned. Without one a password is generated and returned, for the
        replica to print once. ``None`` also when ``admin`` already exists.
        """
        if self.cstore.hget(self.hkey, ADMIN) is not None:
            return None
        generated = None
        if not password:
            generated = generate_password()
        try:
            self.create(ADMIN, password or generated or "", role="admin")
        except Conflict:  # another replica created it a moment ago
            return None
        logger.info("created the bootstrap admin account")
        return generated
