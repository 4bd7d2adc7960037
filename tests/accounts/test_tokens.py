"""Session and draft tokens never stand in for one another; a draft is confirmed once."""

from __future__ import annotations

import threading
import time
import uuid

import jwt
import pytest

from datagems.accounts.tokens import (
    DRAFT_TTL_SECONDS,
    RESET_TTL_SECONDS,
    SESSION_TTL_SECONDS,
    DraftLedger,
    Session,
    SessionRevocations,
    issue_draft,
    issue_reset,
    issue_session,
    job_id_for_draft,
    read_draft,
    read_reset,
    read_session,
    reset_is_current,
    session_is_current,
    token_digest,
)
from datagems.errors import BadRequest, Conflict, Unauthorized
from datagems.store import keys
from datagems.store.embedded import SqliteCStore

SECRET = "a-session-secret-of-a-decent-length-0123456789"
DRAFT = {
    "title": "Books",
    "totalRecords": 10,
    "description": "a book",
    "instructions": "be brief",
    "schema": {"type": "object", "properties": {"title": {"type": "string"}}},
    "schemaGeneratedAt": "2026-11-22T02:34:00.314Z",
    "schemaDurationMs": 1200,
    "schemaRefreshes": 0,
    "datasetMode": "standard",
    "inference": {"baseUrl": "http://gateway", "path": "/create_chat_completion"},
}


def original_token(payload: dict, secret: str = SECRET) -> str:
    """A token as the original app signs it (HS256, no ``typ``)."""
    now = int(time.time())
    return jwt.encode({"iat": now, "exp": now + 3600, **payload}, secret, algorithm="HS256")


def test_a_session_round_trips_with_the_originals_fields() -> None:
    token = issue_session(SECRET, "ada", "admin")
    assert read_session(SECRET, token) == Session("ada", "admin")
    payload = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert payload["username"] == "ada" and payload["role"] == "admin"
    assert payload["typ"] == "session"
    assert payload["exp"] - payload["iat"] == SESSION_TTL_SECONDS


def test_a_session_signed_by_the_original_app_is_accepted() -> None:
    assert read_session(SECRET, original_token({"username": "ada", "role": "user"})) == Session(
        "ada", "user"
    )


def test_a_draft_presented_as_a_session_is_refused() -> None:
    with pytest.raises(Unauthorized):
        read_session(SECRET, issue_draft(SECRET, "ada", DRAFT))


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "ada", "role": "user", "schema": {}},
        {"username": "ada", "role": "user", "totalRecords": 5},
        {"username": "ada", "role": "user", "typ": "draft"},
        {"username": "ada", "role": "user", "typ": "something-else"},
    ],
    ids=["carrying a schema", "carrying totalRecords", "typed draft", "unknown typ"],
)
def test_an_original_draft_or_an_odd_token_is_never_a_session(payload: dict) -> None:
    with pytest.raises(Unauthorized):
        read_session(SECRET, original_token(payload))


@pytest.mark.parametrize(
    "payload",
    [{"role": "user"}, {"username": "ada"}, {"username": "", "role": "user"}, {"username": 7}],
    ids=["no username", "no role", "empty username", "numeric username"],
)
def test_a_session_missing_its_fields_is_refused(payload: dict) -> None:
    with pytest.raises(Unauthorized):
        read_session(SECRET, original_token(payload))


def test_a_session_without_an_expiry_is_refused() -> None:
    token = jwt.encode({"username": "ada", "role": "user"}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        read_session(SECRET, token)


def test_a_tampered_session_is_refused() -> None:
    token = issue_session(SECRET, "ada", "user")
    header, _payload, signature = token.split(".")
    forged = jwt.encode(
        {"username": "ada", "role": "admin", "typ": "session", "exp": int(time.time()) + 60},
        "guessed-secret-of-a-decent-length-0123456789",
        algorithm="HS256",
    ).split(".")[1]
    with pytest.raises(Unauthorized):
        read_session(SECRET, f"{header}.{forged}.{signature}")
    with pytest.raises(Unauthorized):
        read_session("another-secret-of-a-decent-length-0123456789", token)


def test_an_unsigned_session_is_refused() -> None:
    token = jwt.encode(
        {"username": "ada", "role": "admin", "exp": int(time.time()) + 60}, None, algorithm="none"
    )
    with pytest.raises(Unauthorized):
        read_session(SECRET, token)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
def test_garbage_is_not_a_session(token: str) -> None:
    with pytest.raises(Unauthorized):
        read_session(SECRET, token)


def test_an_expired_session_is_refused() -> None:
    token = issue_session(SECRET, "ada", "user", now=time.time() - SESSION_TTL_SECONDS - 120)
    with pytest.raises(Unauthorized):
        read_session(SECRET, token)


def test_a_draft_round_trips_bound_to_its_user() -> None:
    token = issue_draft(SECRET, "ada", DRAFT)
    payload = read_draft(SECRET, token, "ada")
    for name, value in DRAFT.items():
        assert payload[name] == value
    assert payload["typ"] == "draft" and payload["sub"] == "ada"
    assert payload["jti"]
    assert payload["exp"] - payload["iat"] == DRAFT_TTL_SECONDS


def test_a_draft_cannot_smuggle_session_claims() -> None:
    token = issue_draft(SECRET, "ada", {**DRAFT, "username": "root", "role": "admin", "typ": "x"})
    payload = read_draft(SECRET, token, "ada")
    assert "username" not in payload and "role" not in payload
    assert payload["typ"] == "draft"


def test_every_draft_gets_its_own_id() -> None:
    first = read_draft(SECRET, issue_draft(SECRET, "ada", DRAFT), "ada")
    second = read_draft(SECRET, issue_draft(SECRET, "ada", DRAFT), "ada")
    assert first["jti"] != second["jti"]


def test_a_session_presented_as_a_draft_is_refused() -> None:
    with pytest.raises(BadRequest, match="Invalid or expired draft"):
        read_draft(SECRET, issue_session(SECRET, "ada", "user"), "ada")


def test_an_original_untyped_draft_is_refused_as_a_draft() -> None:
    with pytest.raises(BadRequest, match="Invalid or expired draft"):
        read_draft(SECRET, original_token(DRAFT), "ada")


def test_another_users_draft_is_refused() -> None:
    with pytest.raises(BadRequest, match="Invalid or expired draft"):
        read_draft(SECRET, issue_draft(SECRET, "ada", DRAFT), "grace")


def test_an_expired_draft_is_refused() -> None:
    token = issue_draft(SECRET, "ada", DRAFT, now=time.time() - DRAFT_TTL_SECONDS - 120)
    with pytest.raises(BadRequest, match="Invalid or expired draft"):
        read_draft(SECRET, token, "ada")


def test_a_tampered_draft_is_refused() -> None:
    token = issue_draft(SECRET, "ada", DRAFT)
    header, _, signature = token.split(".")
    other = issue_draft(SECRET, "ada", {**DRAFT, "totalRecords": 10_000}).split(".")[1]
    with pytest.raises(BadRequest, match="Invalid or expired draft"):
        read_draft(SECRET, f"{header}.{other}.{signature}", "ada")
    with pytest.raises(BadRequest, match="Invalid or expired draft"):
        read_draft("another-secret-of-a-decent-length-0123456789", token, "ada")


def test_a_draft_becomes_the_same_job_id_on_every_replica() -> None:
    assert job_id_for_draft("abc") == job_id_for_draft("abc")
    assert job_id_for_draft("abc") != job_id_for_draft("abd")
    assert uuid.UUID(job_id_for_draft("abc")).version == 5


def test_a_draft_is_held_by_one_request_at_a_time(cstore: SqliteCStore) -> None:
    ledger = DraftLedger(cstore)
    job_id = job_id_for_draft("jti-1")
    ledger.claim("jti-1", job_id)
    assert cstore.hget(keys.DRAFTS_USED, "jti-1")["jobId"] == job_id
    with pytest.raises(Conflict, match="being confirmed by another request"):
        ledger.claim("jti-1", job_id)


def test_a_second_replica_sharing_the_store_refuses_the_same_draft(tmp_path) -> None:
    first = SqliteCStore(tmp_path / "shared.sqlite")
    second = SqliteCStore(tmp_path / "shared.sqlite")
    try:
        DraftLedger(first).claim("jti-2", job_id_for_draft("jti-2"))
        with pytest.raises(Conflict):
            DraftLedger(second).claim("jti-2", job_id_for_draft("jti-2"))
    finally:
        first.close()
        second.close()


def test_of_concurrent_claims_of_one_draft_at_most_one_holds_it(tmp_path) -> None:
    stores = [SqliteCStore(tmp_path / "shared.sqlite") for _ in range(6)]
    start = threading.Barrier(len(stores))
    held: list[int] = []

    def claim(n: int) -> None:
        start.wait()
        try:
            DraftLedger(stores[n]).claim("jti-4", "job-d")
        except Conflict:
            return
        held.append(n)

    try:
        threads = [threading.Thread(target=claim, args=(n,)) for n in range(len(stores))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(held) <= 1
    finally:
        for store in stores:
            store.close()


def test_a_released_or_stale_claim_can_be_claimed_again(cstore: SqliteCStore) -> None:
    ledger = DraftLedger(cstore)
    ledger.claim("jti-3", "job-a")
    ledger.release("jti-3")
    assert ledger.claimed("jti-3") is None
    ledger.claim("jti-3", "job-a")
    assert ledger.claimed("jti-3")["jobId"] == "job-a"
    with pytest.raises(Conflict):  # claimed again, it is held again
        ledger.claim("jti-3", "job-b")
    cstore.hset(keys.DRAFTS_USED, "jti-3", {"jobId": "job-a", "at": "2020-01-01T00:00:00.000Z"})
    ledger.claim("jti-3", "job-a")


def test_a_session_is_stale_once_the_password_it_was_issued_under_changes() -> None:
    token = issue_session(SECRET, "ada", "user", credential="digest-of-the-first-password")
    session = read_session(SECRET, token)
    assert session_is_current(SECRET, session, "digest-of-the-first-password")
    assert not session_is_current(SECRET, session, "digest-of-the-second-password")
    payload = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert "digest-of-the-first-password" not in str(payload)


def test_a_session_of_the_original_app_has_no_stamp_and_stays_current() -> None:
    session = read_session(SECRET, original_token({"username": "ada", "role": "user"}))
    assert session_is_current(SECRET, session, "any-digest")


def test_a_session_with_a_malformed_stamp_is_refused() -> None:
    token = original_token({"username": "ada", "role": "user", "typ": "session", "cred": 7})
    with pytest.raises(Unauthorized):
        read_session(SECRET, token)


# -- reset links ---------------------------------------------------------------------------
def test_a_reset_link_is_good_until_the_password_it_may_replace_changes() -> None:
    token = issue_reset(SECRET, "ada", "credential-1")
    claim = read_reset(SECRET, token)
    assert claim.username == "ada"
    assert reset_is_current(SECRET, claim, "credential-1")
    assert not reset_is_current(SECRET, claim, "credential-2")  # used, or changed since
    assert not reset_is_current(SECRET, claim, "")  # no password at all: a deleted account


def test_a_reset_link_expires_within_the_hour() -> None:
    old = issue_reset(SECRET, "ada", "c", now=time.time() - RESET_TTL_SECONDS - 120)
    with pytest.raises(BadRequest):
        read_reset(SECRET, old)


def test_sessions_drafts_and_reset_links_are_never_taken_for_one_another() -> None:
    session = issue_session(SECRET, "ada", "user", credential="c")
    drafted = issue_draft(SECRET, "ada", DRAFT)
    reset = issue_reset(SECRET, "ada", "c")
    for token in (session, drafted, original_token({"username": "ada", "role": "admin"})):
        with pytest.raises(BadRequest):
            read_reset(SECRET, token)
    with pytest.raises(Unauthorized):
        read_session(SECRET, reset)
    with pytest.raises(BadRequest):
        read_draft(SECRET, reset, "ada")
    with pytest.raises(BadRequest):
        read_reset("another-secret-of-a-decent-length-000000", reset)


# -- sign-out ------------------------------------------------------------------------------
def test_a_signed_out_token_is_named_by_its_digest_and_expired_ones_are_pruned(
    cstore: SqliteCStore,
) -> None:
    revocations = SessionRevocations(cstore)
    token = issue_session(SECRET, "ada", "user")
    revocations.revoke(token, "ada", read_session(SECRET, token).expires)
    assert revocations.is_revoked(token_digest(token))
    assert not revocations.is_revoked(token_digest(token + "x"))
    assert token not in str(cstore.hgetall_raw(keys.REVOKED_SESSIONS))  # never the token
    revocations.revoke("an-old-token", "bob", int(time.time()) - 3600)
    assert revocations.prune() == 1
    assert revocations.is_revoked(token_digest(token))
    assert not revocations.is_revoked(token_digest("an-old-token"))


def test_two_sessions_issued_in_the_same_second_are_different_tokens() -> None:
    """Signing one out must never end the other (the sign-out names a token)."""
    now = time.time()
    first = issue_session(SECRET, "ada", "user", credential="c", now=now)
    second = issue_session(SECRET, "ada", "user", credential="c", now=now)
    assert first != second and token_digest(first) != token_digest(second)
