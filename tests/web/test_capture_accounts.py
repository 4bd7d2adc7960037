"""The original's account values, from its recorded run (``ts-1.1.3-capture/stage1``): read
without loss, and served by a replica whose store holds them (issue 12)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from datagems.accounts.users import Accounts
from datagems.errors import Unauthorized
from datagems.models import RegisterMailFailure, UserIndexEntry, UserSettings
from datagems.store import keys
from datagems.store.embedded import SqliteCStore
from datagems.store.repos import UsersRepo
from tests.fleet import ADMIN_PASSWORD
from tests.web.harness import LiveApp

# copied byte for byte from the recorded run of the original (ts-1.1.3-capture/stage1)
CAPTURE = Path(__file__).resolve().parent.parent / "fixtures" / "ts-1.1.3-capture"
STAGE1 = CAPTURE / "stage1"
PEPPER = "capture-pepper-TEST-secret"  # the capture's test values (its README, section 8)
MAILED = {"tess_capture_fd7c": "ONsYScS_G0HUAzuL", "mia_mailfail_7460": "D1lC9v-BoKkMIn7Y"}
DELETED = ("dan_deleted_3e2f", "POdATXPB1c9fMhl5")


def stage1() -> dict[str, Any]:
    return orjson.loads((STAGE1 / "cstore.json").read_bytes())


def pending_mail_failure() -> str:
    """The original's record while the mail was still undelivered (later rewritten)."""
    for line in (STAGE1 / "writes.jsonl").read_text().splitlines():
        body = orjson.loads(orjson.loads(line).get("reqBody") or "{}")
        if body.get("hkey") == keys.REGISTER_MAIL_FAILURES and "passwordEncrypted" in body["value"]:
            return body["value"]
    raise AssertionError("no pending mail failure in the capture")


def seed(cstore: SqliteCStore | Any, *, skip_admin: bool = False) -> None:
    """Every captured value, stored as the exact text the original sent."""
    captured = stage1()
    for hkey, fields in captured["hashes"].items():
        for field, text in fields.items():
            if not (skip_admin and hkey == "datagen:auth" and field == "admin"):
                cstore.hset_raw(hkey, field, text)
    for key, text in captured["keys"].items():
        cstore.set_raw(key, text)


# -- the values, read by our models and repositories ------------------------------------
def test_every_captured_auth_record_reads_and_verifies_with_the_originals_pepper(
    tmp_path: Path,
) -> None:
    cstore = SqliteCStore(tmp_path / "c.sqlite")
    seed(cstore)
    accounts = Accounts(cstore, "datagen:auth", PEPPER)
    listed = {account.username: account for account in accounts.all()}
    assert sorted(listed) == ["admin", "dan_deleted_3e2f", "mia_mailfail_7460", "tess_capture_fd7c"]
    for username, password in MAILED.items():
        assert accounts.authenticate(username, password).username == username
        assert listed[username].metadata["email"].endswith("@example.com")
        assert not listed[username].deleted
    assert listed["admin"].role == "admin" and listed["admin"].metadata == {}
    dan = listed[DELETED[0]]
    assert dan.deleted and dan.metadata["name"] == "Dan Deleted"
    with pytest.raises(Unauthorized):
        accounts.authenticate(*DELETED)
    # a rewrite of ours (a new password) keeps every field the original wrote
    before = orjson.loads(cstore.hget_raw("datagen:auth", "tess_capture_fd7c"))
    accounts.set_password("tess_capture_fd7c", "another-Passw0rd")
    after = orjson.loads(cstore.hget_raw("datagen:auth", "tess_capture_fd7c"))
    assert {k: v for k, v in after.items() if k not in ("password", "updatedAt")} == {
        k: v for k, v in before.items() if k not in ("password", "updatedAt")
    }
    cstore.close()


def test_users_index_entries_and_settings_round_trip_without_loss() -> None:
    captured = stage1()["hashes"]
    for text in captured["datagen:users"].values():
        original = orjson.loads(text)
        assert UserIndexEntry.model_validate(original).wire() == original
    for email, text in captured["datagen:user-email-index"].items():
        assert not text.startswith('"')  # plain text, as this app now writes it too
        assert text.split("_")[0] == email.split(".")[0]
    settings_text = stage1()["keys"]["datagen:user:tess_capture_fd7c:settings"]
    original = orjson.loads(settings_text)
    wire = UserSettings.model_validate(original).wire()
    assert wire["activeProfileId"] == original["activeProfileId"]
    for ours, theirs in zip(wire["profiles"], original["profiles"], strict=True):
        assert {k: ours[k] for k in theirs} == theirs  # every field kept, createdAt too


def test_the_originals_mail_failure_records_read_without_loss() -> None:
    sent = stage1()["hashes"][keys.REGISTER_MAIL_FAILURES]["mia.mailfail@example.com"]
    for text in (pending_mail_failure(), sent):
        original = orjson.loads(text)
        record = RegisterMailFailure.model_validate(original)
        assert record.wire() == original
        assert record.username == "mia_mailfail_7460"
    assert RegisterMailFailure.model_validate_json(pending_mail_failure()).status == "pending"


def test_an_index_written_as_json_text_by_an_earlier_version_is_read_and_repaired(
    tmp_path: Path,
) -> None:
    cstore = SqliteCStore(tmp_path / "c.sqlite")
    seed(cstore)
    cstore.hset_raw(keys.EMAIL_INDEX, "pat.py@example.org", '"pat_py"')  # what we used to write
    cstore.hset_raw(keys.EMAIL_INDEX, "odd@example.org", "123")  # plain text that parses as JSON
    users = UsersRepo(cstore)
    assert users.username_for_email("Pat.Py@example.org") == "pat_py"
    assert users.username_for_email("odd@example.org") == "123"
    assert users.repair_email_index() == 1
    assert cstore.hget_raw(keys.EMAIL_INDEX, "pat.py@example.org") == "pat_py"
    assert cstore.hget_raw(keys.EMAIL_INDEX, "odd@example.org") == "123"
    assert cstore.hget_raw(keys.EMAIL_INDEX, "tess.capture@example.com") == "tess_capture_fd7c"
    assert users.repair_email_index() == 0
    cstore.close()


# -- served by a replica ----------------------------------------------------------------
@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    app = LiveApp(Path(tmp_path_factory.mktemp("capture")), auth_secret=SecretStr(PEPPER))
    app.start()
    assert app.services is not None
    seed(app.services.cstore, skip_admin=True)
    yield app
    app.stop()


def test_the_originals_users_sign_in_and_the_deleted_one_is_hidden(seeded: LiveApp) -> None:
    tess = seeded.login("tess_capture_fd7c", MAILED["tess_capture_fd7c"])
    me = tess.get("/api/auth/me").json()
    assert (me["username"], me["role"]) == ("tess_capture_fd7c", "user")
    with seeded.client() as client:
        body = {"username": DELETED[0], "password": DELETED[1]}
        assert client.post("/api/auth/login", json=body).status_code == 401
    admin = seeded.login("admin", ADMIN_PASSWORD)
    listed = {a["username"]: a for a in admin.get("/api/admin/accounts").json()["accounts"]}
    assert DELETED[0] not in listed
    assert listed["tess_capture_fd7c"]["email"] == "tess.capture@example.com"
    assert listed["mia_mailfail_7460"]["country"] == "France"
    profiles = tess.get("/api/user/settings").json()["profiles"]
    assert [(p["name"], p["model"], p["apiKeyMasked"]) for p in profiles] == [
        ("Example OpenAI-compatible", "capture-model-small", "••••ey-1"),
        ("Second profile", "capture-model-large", "••••ey-2"),
    ]
    assert "sk-capture-TEST-key" not in str(profiles)
