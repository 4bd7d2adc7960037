"""The cstore-auth users hash: records both ways, login failures, admin bootstrap."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from datagems.accounts.passwords import verify_password
from datagems.accounts.users import Account, Accounts, canonical_username, generate_password
from datagems.errors import BadRequest, Conflict, NotFound, Unauthorized
from datagems.store.embedded import SqliteCStore
from tests.accounts.test_passwords import (
    ARGON2_HASH,
    PASSWORD,
    PEPPER,
    SALT_B64,
    SCRYPT_HASH,
)

HKEY = "test:auth"


@pytest.fixture
def accounts(cstore: SqliteCStore) -> Accounts:
    return Accounts(cstore, HKEY, PEPPER)


def original_record(algo: str) -> dict:
    """A user record as cstore-auth-ts writes it, with the reference vector's hash."""
    if algo == "argon2id":
        password = {
            "algo": "argon2id",
            "hash": ARGON2_HASH,
            "salt": SALT_B64,
            "version": 1,
            "params": {"timeCost": 3, "memoryCost": 65536, "parallelism": 1, "outputLen": 32},
        }
    else:
        password = {
            "algo": "scrypt",
            "hash": SCRYPT_HASH,
            "salt": SALT_B64,
            "version": 1,
            "params": {"N": 32768, "r": 8, "p": 1, "keyLength": 32},
        }
    return {
        "type": "simple",
        "password": password,
        "role": "user",
        "metadata": {"email": "ada@example.com"},
        "createdAt": "2026-11-22T02:34:00.314Z",
        "updatedAt": "2026-11-22T02:34:00.314Z",
    }


@pytest.mark.parametrize("raw", ["Ada", "  ada  ", "ADA"])
def test_a_username_is_trimmed_and_lower_cased(raw: str) -> None:
    assert canonical_username(raw) == "ada"


@pytest.mark.parametrize("raw", ["ab", "a" * 65, "ada lovelace", "ada@example.com", "ädä", ""])
def test_a_username_outside_the_pattern_is_a_bad_request(raw: str) -> None:
    with pytest.raises(BadRequest):
        canonical_username(raw)


@pytest.mark.parametrize("algo", ["argon2id", "scrypt"])
def test_a_record_written_by_the_original_with_the_reference_vector_authenticates(
    cstore: SqliteCStore, accounts: Accounts, algo: str
) -> None:
    cstore.hset(HKEY, "ada", original_record(algo))  # JSON text, as the original writes it
    assert isinstance(cstore.hget_raw(HKEY, "ada"), str)
    account = accounts.authenticate("Ada", PASSWORD)
    assert account == Account(
        username="ada",
        role="user",
        created_at="2026-11-22T02:34:00.314Z",
        metadata={"email": "ada@example.com"},
    )


def test_a_created_record_is_json_text_of_the_cstore_auth_shape(
    cstore: SqliteCStore, accounts: Accounts
) -> None:
    accounts.create("Grace", "hopper-pw", role="admin", metadata={"name": "Grace"})
    raw = cstore.hget_raw(HKEY, "grace")
    assert isinstance(raw, str) and raw.startswith("{")
    record = cstore.hget(HKEY, "grace")
    assert list(record) == ["type", "password", "role", "metadata", "createdAt", "updatedAt"]
    assert record["type"] == "simple"
    assert record["role"] == "admin"
    assert record["metadata"] == {"name": "Grace"}
    assert record["createdAt"].endswith("Z") and len(record["createdAt"]) == 24


def test_a_created_record_verifies_when_recomputed_with_the_reference_algorithm(
    cstore: SqliteCStore, accounts: Accounts
) -> None:
    accounts.create("grace", "hopper-pw")
    stored = cstore.hget(HKEY, "grace")["password"]
    recomputed = Argon2id(
        salt=base64.b64decode(stored["salt"]),
        length=stored["params"]["outputLen"],
        iterations=stored["params"]["timeCost"],
        lanes=stored["params"]["parallelism"],
        memory_cost=stored["params"]["memoryCost"],
        secret=PEPPER.encode("utf-8"),
    ).derive(b"hopper-pw")
    assert base64.b64encode(recomputed).decode() == stored["hash"]


def test_creating_an_existing_user_is_a_conflict(accounts: Accounts) -> None:
    accounts.create("grace", "one")
    with pytest.raises(Conflict):
        accounts.create("GRACE", "two")
    assert accounts.authenticate("grace", "one").username == "grace"


def test_creating_with_an_unknown_role_or_an_empty_password_is_a_bad_request(
    accounts: Accounts,
) -> None:
    with pytest.raises(BadRequest):
        accounts.create("grace", "pw", role="root")
    with pytest.raises(BadRequest):
        accounts.create("grace", "")
    assert accounts.get("grace") is None


def test_every_login_failure_has_the_same_message(cstore: SqliteCStore, accounts: Accounts) -> None:
    accounts.create("grace", "right")
    cstore.hset(HKEY, "broken", {"type": "simple", "password": {"algo": "md5"}, "role": "user"})
    cstore.hset_raw(HKEY, "plain", "not json at all")
    cstore.hset(HKEY, "nopassword", {"type": "simple", "role": "user"})
    attempts = [
        ("grace", "wrong"),
        ("nobody", "right"),
        ("broken", "anything"),
        ("plain", "anything"),
        ("nopassword", "anything"),
        ("x", "right"),
        ("not a valid name!", "right"),
        ("grace", ""),
    ]
    messages = set()
    for username, password in attempts:
        with pytest.raises(Unauthorized) as caught:
            accounts.authenticate(username, password)
        messages.add(str(caught.value))
    assert messages == {"invalid username or password"}


def test_an_unknown_user_costs_a_password_hash_like_a_known_one(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datagems.accounts.users as users

    calls: list[str] = []

    def counting(password: str, record: dict, pepper: str) -> bool:
        calls.append(record.get("algo", "?"))
        return verify_password(password, record, pepper)

    monkeypatch.setattr(users, "verify_password", counting)
    with pytest.raises(Unauthorized):
        accounts.authenticate("nobody", "pw")
    assert calls == ["argon2id"]


def test_set_password_replaces_the_password_and_keeps_the_rest(
    cstore: SqliteCStore, accounts: Accounts
) -> None:
    cstore.hset(HKEY, "ada", original_record("scrypt"))
    accounts.set_password("ada", "new-password")
    with pytest.raises(Unauthorized):
        accounts.authenticate("ada", PASSWORD)
    account = accounts.authenticate("ada", "new-password")
    record = cstore.hget(HKEY, "ada")
    assert record["password"]["algo"] == "argon2id"
    assert record["createdAt"] == "2026-11-22T02:34:00.314Z"
    assert record["updatedAt"] != record["createdAt"]
    assert account.metadata == {"email": "ada@example.com"}


def test_set_password_of_an_unknown_user_is_not_found(accounts: Accounts) -> None:
    with pytest.raises(NotFound):
        accounts.set_password("nobody", "pw")


def test_a_deleted_user_is_kept_as_the_original_does_and_can_no_longer_sign_in(
    cstore: SqliteCStore, accounts: Accounts
) -> None:
    accounts.create("grace", "pw", metadata={"email": "grace@example.com", "name": "Grace"})
    accounts.soft_delete("grace", "admin")
    record = cstore.hget(HKEY, "grace")
    assert record["password"] is None and record["role"] == "user"
    assert record["metadata"]["email"] == "grace@example.com"
    assert record["metadata"]["__datagemsDeleted"] is True
    assert record["metadata"]["__datagemsDeletedBy"] == "admin"
    assert record["updatedAt"] == record["metadata"]["__datagemsDeletedAt"]
    found = accounts.get("grace")
    assert found is not None and found.deleted
    with pytest.raises(Unauthorized):
        accounts.authenticate("grace", "pw")
    with pytest.raises(NotFound):
        accounts.set_password("grace", "another")
    with pytest.raises(Conflict):  # the name stays taken
        accounts.create("grace", "pw")


def test_a_purged_user_keeps_only_a_tombstone(cstore: SqliteCStore, accounts: Accounts) -> None:
    accounts.create("hank", "pw", metadata={"email": "hank@example.com", "name": "Hank"})
    accounts.soft_delete("hank", "admin", purge=True)
    metadata = cstore.hget(HKEY, "hank")["metadata"]
    assert "email" not in metadata and "name" not in metadata
    assert metadata["__datagemsDeleted"] is True and metadata["__datagemsPurged"] is True
    with pytest.raises(NotFound):
        accounts.soft_delete("nobody", "admin")


def test_all_lists_readable_accounts_by_name(cstore: SqliteCStore, accounts: Accounts) -> None:
    accounts.create("zed", "pw")
    cstore.hset(HKEY, "ada", original_record("argon2id"))
    cstore.hset_raw(HKEY, "junk", "not json")
    assert [a.username for a in accounts.all()] == ["ada", "zed"]


def test_get_of_an_invalid_name_is_none(accounts: Accounts) -> None:
    assert accounts.get("not a name!") is None


def test_bootstrap_with_a_password_creates_the_admin_once_and_returns_nothing_to_print(
    accounts: Accounts,
) -> None:
    assert accounts.bootstrap_admin("operator-pw") is None
    admin = accounts.authenticate("admin", "operator-pw")
    assert admin.role == "admin"


def test_bootstrap_without_a_password_returns_the_generated_one(accounts: Accounts) -> None:
    generated = accounts.bootstrap_admin(None)
    assert generated and len(generated) >= 16
    assert accounts.authenticate("admin", generated).role == "admin"


def test_bootstrap_never_overwrites_an_existing_admin(
    cstore: SqliteCStore, accounts: Accounts
) -> None:
    first = accounts.bootstrap_admin(None)
    assert first
    before = cstore.hget_raw(HKEY, "admin")
    assert accounts.bootstrap_admin(None) is None
    assert accounts.bootstrap_admin("another-pw") is None
    assert cstore.hget_raw(HKEY, "admin") == before
    assert accounts.authenticate("admin", first).role == "admin"
    with pytest.raises(Unauthorized):
        accounts.authenticate("admin", "another-pw")


def test_bootstrap_leaves_an_unreadable_admin_record_alone(cstore: SqliteCStore) -> None:
    cstore.hset_raw(HKEY, "admin", "something the original wrote")
    assert Accounts(cstore, HKEY, PEPPER).bootstrap_admin(None) is None
    assert cstore.hget_raw(HKEY, "admin") == "something the original wrote"


def test_generated_passwords_differ() -> None:
    assert len({generate_password() for _ in range(20)}) == 20


def test_the_pepper_is_not_in_the_repr(accounts: Accounts) -> None:
    assert PEPPER not in repr(accounts)
