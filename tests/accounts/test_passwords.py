"""The cstore-auth password object, checked against the reference vector both ways."""

from __future__ import annotations

import base64
import copy

import pytest
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from datagems.accounts.passwords import hash_password, verify_password

SALT = bytes.fromhex("00112233445566778899aabbccddeeff")
PEPPER = "my-pepper-ßecret"
PASSWORD = "S3curePassw0rd-ü"
ARGON2_HASH = "plIoPYAu4SWOvh2QOhYc7ZsLqJkmteUphOfhT/MEbfw="
SCRYPT_HASH = "e5DSurhfW4Vsx1WcVfQR3++ttboUSwLLfUn7mTH83p4="
SALT_B64 = base64.b64encode(SALT).decode()

ARGON2_RECORD = {
    "algo": "argon2id",
    "hash": ARGON2_HASH,
    "salt": SALT_B64,
    "version": 1,
    "params": {"timeCost": 3, "memoryCost": 65536, "parallelism": 1, "outputLen": 32},
}
SCRYPT_RECORD = {
    "algo": "scrypt",
    "hash": SCRYPT_HASH,
    "salt": SALT_B64,
    "version": 1,
    "params": {"N": 32768, "r": 8, "p": 1, "keyLength": 32},
}


@pytest.mark.parametrize("record", [ARGON2_RECORD, SCRYPT_RECORD], ids=["argon2id", "scrypt"])
def test_the_reference_vector_verifies(record: dict) -> None:
    assert verify_password(PASSWORD, record, PEPPER)


@pytest.mark.parametrize("record", [ARGON2_RECORD, SCRYPT_RECORD], ids=["argon2id", "scrypt"])
def test_the_reference_vector_refuses_a_wrong_password_or_pepper(record: dict) -> None:
    assert not verify_password(PASSWORD + "x", record, PEPPER)
    assert not verify_password(PASSWORD, record, "another-pepper")
    assert not verify_password(PASSWORD, record, "")


def test_the_pepper_is_argons_secret_input_not_appended_to_the_password() -> None:
    appended = Argon2id(salt=SALT, length=32, iterations=3, lanes=1, memory_cost=65536).derive(
        (PASSWORD + PEPPER).encode()
    )
    assert base64.b64encode(appended).decode() != ARGON2_HASH


def test_a_new_password_object_has_the_cstore_auth_shape() -> None:
    record = hash_password(PASSWORD, PEPPER)
    assert list(record) == ["algo", "hash", "salt", "version", "params"]
    assert record["algo"] == "argon2id"
    assert record["version"] == 1
    assert record["params"] == {
        "timeCost": 3,
        "memoryCost": 65536,
        "parallelism": 1,
        "outputLen": 32,
    }
    assert len(base64.b64decode(record["salt"])) == 16
    assert len(base64.b64decode(record["hash"])) == 32


def test_a_new_password_object_matches_the_reference_algorithm_recomputed_directly() -> None:
    record = hash_password(PASSWORD, PEPPER)
    expected = Argon2id(
        salt=base64.b64decode(record["salt"]),
        length=32,
        iterations=3,
        lanes=1,
        memory_cost=65536,
        secret=PEPPER.encode("utf-8"),
    ).derive(PASSWORD.encode("utf-8"))
    assert base64.b64decode(record["hash"]) == expected
    assert verify_password(PASSWORD, record, PEPPER)


def test_two_hashes_of_one_password_have_different_salts() -> None:
    assert hash_password("same", PEPPER)["salt"] != hash_password("same", PEPPER)["salt"]


def _broken(change: dict) -> dict:
    record = copy.deepcopy(ARGON2_RECORD)
    for key, value in change.items():
        if key.startswith("params."):
            record["params"][key.split(".", 1)[1]] = value
        elif value is None:
            record.pop(key)
        else:
            record[key] = value
    return record


MALFORMED = {
    "unknown algorithm": _broken({"algo": "md5"}),
    "no hash": _broken({"hash": None}),
    "hash not base64": _broken({"hash": "!!!not base64!!!"}),
    "hash of the wrong length": _broken({"hash": base64.b64encode(b"x" * 31).decode()}),
    "salt a number": _broken({"salt": 1234}),
    "params not an object": _broken({"params": "fast"}),
    "time cost a string": _broken({"params.timeCost": "3"}),
    "time cost zero": _broken({"params.timeCost": 0}),
    "memory cost of 4 TiB": _broken({"params.memoryCost": 1 << 32}),
    "parallelism a boolean": _broken({"params.parallelism": True}),
    "output length missing": _broken({"params.outputLen": None}),
    "scrypt N not a power of two": {
        **SCRYPT_RECORD,
        "params": {**SCRYPT_RECORD["params"], "N": 1000},
    },
    "scrypt asking for 32 GiB": {
        **SCRYPT_RECORD,
        "params": {**SCRYPT_RECORD["params"], "N": 1 << 20, "r": 256},
    },
    "an empty object": {},
}


@pytest.mark.parametrize("record", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_record_does_not_verify_and_never_raises(record: dict) -> None:
    assert verify_password(PASSWORD, record, PEPPER) is False


@pytest.mark.parametrize("record", [None, "text", ["list"], 42], ids=repr)
def test_a_record_that_is_not_an_object_does_not_verify(record: object) -> None:
    assert verify_password(PASSWORD, record, PEPPER) is False  # type: ignore[arg-type]
