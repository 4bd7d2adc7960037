"""The cstore-auth password object: argon2id written, argon2id and scrypt verified.

Byte-compatible with ``@ratio1/cstore-auth-ts`` (see ``reference/ratio1-api.md``)::

    {"algo": "argon2id", "hash": "<base64 32 bytes>", "salt": "<base64 16 bytes>", "version": 1,
     "params": {"timeCost": 3, "memoryCost": 65536, "parallelism": 1, "outputLen": 32}}

- argon2id v1.3 over the UTF-8 password, the 16-byte salt, and the pepper (UTF-8) as
  Argon2's *secret* (K) input, not appended to the password;
- scrypt (read only): ``scrypt(password, salt || pepper)`` with ``{"N", "r", "p", "keyLength"}``.

Verification uses the parameters stored in the record, within sane bounds (a record
asking for 4 GiB of memory is refused, not computed), and compares in constant time.
A malformed record never raises: it simply does not verify.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from typing import Any

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

ARGON2_PARAMS: dict[str, int] = {
    "timeCost": 3,
    "memoryCost": 65536,
    "parallelism": 1,
    "outputLen": 32,
}
SALT_BYTES = 16
RECORD_VERSION = 1

# Bounds on what a stored record may ask for: beyond them it is refused, not computed.
_MAX_TIME_COST = 16
_MAX_MEMORY_KIB = 1 << 20  # 1 GiB
_MAX_PARALLELISM = 16
_MIN_OUTPUT, _MAX_OUTPUT = 16, 128
_MAX_SCRYPT_N = 1 << 20
_MAX_SCRYPT_R = 32
_MAX_SCRYPT_P = 16
_MAX_SCRYPT_BYTES = 1 << 30  # 128 * N * r


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def _int(params: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def argon2id(
    password: bytes,
    salt: bytes,
    pepper: bytes,
    *,
    time_cost: int,
    memory_cost: int,
    parallelism: int,
    length: int,
) -> bytes:
    """Raw argon2id v1.3 with the pepper as the secret (K) input."""
    kdf = Argon2id(
        salt=salt,
        length=length,
        iterations=time_cost,
        lanes=parallelism,
        memory_cost=memory_cost,
        secret=pepper or None,
    )
    return kdf.derive(password)


def hash_password(password: str, pepper: str) -> dict[str, Any]:
    """A new cstore-auth password object (argon2id, random 16-byte salt)."""
    salt = os.urandom(SALT_BYTES)
    digest = argon2id(
        password.encode("utf-8"),
        salt,
        pepper.encode("utf-8"),
        time_cost=ARGON2_PARAMS["timeCost"],
        memory_cost=ARGON2_PARAMS["memoryCost"],
        parallelism=ARGON2_PARAMS["parallelism"],
        length=ARGON2_PARAMS["outputLen"],
    )
    return {
        "algo": "argon2id",
        "hash": _b64(digest),
        "salt": _b64(salt),
        "version": RECORD_VERSION,
        "params": dict(ARGON2_PARAMS),
    }


def _derive(password: bytes, record: dict[str, Any], pepper: bytes) -> tuple[bytes, bytes] | None:
    """(computed, expected) for a well-formed record, else ``None``."""
    algo = record.get("algo")
    params = record.get("params")
    expected = _unb64(record.get("hash"))
    salt = _unb64(record.get("salt"))
    if not isinstance(params, dict) or expected is None or salt is None:
        return None
    if algo == "argon2id":
        time_cost = _int(params, "timeCost", 1, _MAX_TIME_COST)
        parallelism = _int(params, "parallelism", 1, _MAX_PARALLELISM)
        length = _int(params, "outputLen", _MIN_OUTPUT, _MAX_OUTPUT)
        memory = _int(params, "memoryCost", 8, _MAX_MEMORY_KIB)
        if None in (time_cost, parallelism, length, memory) or len(salt) < 8:
            return None
        assert time_cost and parallelism and length and memory
        if memory < 8 * parallelism or len(expected) != length:
            return None
        computed = argon2id(
            password,
            salt,
            pepper,
            time_cost=time_cost,
            memory_cost=memory,
            parallelism=parallelism,
            length=length,
        )
        return computed, expected
    if algo == "scrypt":
        n = _int(params, "N", 2, _MAX_SCRYPT_N)
        r = _int(params, "r", 1, _MAX_SCRYPT_R)
        p = _int(params, "p", 1, _MAX_SCRYPT_P)
        length = _int(params, "keyLength", _MIN_OUTPUT, _MAX_OUTPUT)
        if None in (n, r, p, length):
            return None
        assert n and r and p and length
        if n & (n - 1) or 128 * n * r > _MAX_SCRYPT_BYTES or len(expected) != length:
            return None
        computed = Scrypt(salt=salt + pepper, length=length, n=n, r=r, p=p).derive(password)
        return computed, expected
    return None


def verify_password(password: str, record: dict[str, Any], pepper: str) -> bool:
    """True when ``password`` matches the password object; False (never raises) otherwise."""
    try:
        if not isinstance(password, str) or not isinstance(record, dict):
            return False
        pair = _derive(password.encode("utf-8"), record, pepper.encode("utf-8"))
    except Exception:  # a malformed record must read as "does not verify", whatever it is
        return False
    if pair is None:
        return False
    computed, expected = pair
    return hmac.compare_digest(computed, expected)
