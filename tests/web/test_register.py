"""Sign-up by e-mail and "forgot your password", against a real SMTP server on loopback
(aiosmtpd). Issue 13's account items 5, 6 (one replica), 7 and 11 over HTTP."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from datagems.bench.procs import free_port, wait_until
from datagems.models import InferenceProfile, UserSettings
from datagems.store import keys
from tests.fleet import ADMIN_PASSWORD
from tests.web.harness import LiveApp, confirm

PUBLIC_URL = "https://gems.example.org"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def for_address(self, address: str) -> list[Message]:
        return [m for m in self.messages if address.lower() in m["To"].lower()]


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    box = Inbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture(scope="module")
def mail_app(
    tmp_path_factory: pytest.TempPathFactory, inbox: tuple[Inbox, int]
) -> Iterator[LiveApp]:
    app = LiveApp(
        Path(tmp_path_factory.mktemp("mail")),
        smtp_host="127.0.0.1",
        smtp_port=inbox[1],
        smtp_from="DataGems <noreply@datagems.test>",
        public_url=PUBLIC_URL,
        register_max_per_email=2,
        register_max_per_ip=1000,
        resend_max_per_email=2,
        resend_max_per_ip=1000,
    ).start()
    yield app
    app.stop()


def body_of(message: Message) -> str:
    return message.get_payload(decode=True).decode()


def credentials(message: Message) -> tuple[str, str]:
    body = body_of(message)
    username = re.search(r"[Uu]sername:\s*(\S+)", body)
    password = re.search(r"[Pp]assword:\s*(\S+)", body)
    assert username and password, body
    return username.group(1), password.group(1)


def reset_link(message: Message) -> str:
    found = re.search(r"(\S+/reset#token=\S+)", body_of(message))
    assert found, body_of(message)
    return found.group(1)


def register(app: LiveApp, name: str, address: str, **headers: str) -> httpx.Response:
    with app.client(headers=headers) as client:
        return client.post("/api/auth/register", json={"name": name, "email": address})


def signed_up(app: LiveApp, box: Inbox, name: str, address: str) -> tuple[str, str]:
    answer = register(app, name, address)
    assert answer.status_code == 201, answer.text
    message = wait_until(lambda: box.for_address(address), what=f"the mail to {address}")[-1]
    return credentials(message)


def login_status(app: LiveApp, username: str, password: str) -> int:
    with app.client() as client:
        body = {"username": username, "password": password}
        return client.post("/api/auth/login", json=body).status_code


def test_registration_mails_a_password_that_logs_in(
    mail_app: LiveApp, inbox: tuple[Inbox, int]
) -> None:
    box, _ = inbox
    with mail_app.client() as client:
        answer = client.post(
            "/api/auth/register",
            json={"name": "Dana Scully", "email": "Dana@Example.org", "country": "US"},
        )
        assert answer.status_code == 201, answer.text
        assert "password" not in answer.text.lower()
        username = answer.json()["username"]
        message = wait_until(lambda: box.for_address("dana@example.org"), what="the mail")[0]
        mailed_username, password = credentials(message)
        assert mailed_username == username
        assert re.fullmatch(r"dana_[0-9a-f]{8}", username)  # the original's shape
        assert f"{PUBLIC_URL}/login" in body_of(message)
        login = client.post("/api/auth/login", json={"username": username, "password": password})
        assert login.status_code == 200 and login.json() == {"username": username, "role": "user"}
        again = client.post(
            "/api/auth/register", json={"name": "Dana", "email": "dana@example.org"}
        )
        assert again.status_code == 409


def test_a_python_registration_is_found_by_the_originals_plain_text_lookup(
    mail_app: LiveApp, inbox: tuple[Inbox, int]
) -> None:
    """The original reads the e-mail index as a plain username (issue 12)."""
    username, _ = signed_up(mail_app, inbox[0], "Pat Py", "Pat.Py@Example.org")
    assert mail_app.services is not None
    stored = mail_app.services.cstore.hget_raw(keys.EMAIL_INDEX, "pat.py@example.org")
    assert stored == username  # the raw text, not JSON text
    entry = mail_app.services.cstore.hget(keys.USERS, username)
    assert entry["email"] == "pat.py@example.org" and "jobCount" not in entry


def test_forgot_password_changes_nothing_until_the_owner_opens_the_mailed_link(
    mail_app: LiveApp, inbox: tuple[Inbox, int]
) -> None:
    """Item 7: an unauthenticated "resend" with a forged Host used to reset the password
    at once, end the sessions and mail a link to the forger's host."""
    box, _ = inbox
    username, password = signed_up(mail_app, box, "Fox Mulder", "fox@example.org")
    owner = mail_app.login(username, password)
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}  # a script, no Origin
    answer = httpx.post(
        f"{mail_app.url}/api/auth/register/resend",
        json={"email": "fox@example.org"},
        headers=forged,
    )
    assert answer.status_code == 202
    message = wait_until(lambda: box.for_address("fox@example.org")[1:], what="the link")[0]
    link = reset_link(message)
    assert link.startswith(f"{PUBLIC_URL}/reset#token=")
    assert "evil.example" not in body_of(message)
    # nothing changed yet: the password still works, the owner's session still works
    assert login_status(mail_app, username, password) == 200
    assert owner.get("/api/auth/me").status_code == 200

    token = link.split("#token=", 1)[1]
    with mail_app.client() as browser:
        page = browser.get("/reset")
        assert page.status_code == 200 and "Choose a new password" in page.text
        short = browser.post("/api/auth/reset", json={"token": token, "password": "short"})
        assert short.status_code == 400
        done = browser.post(
            "/api/auth/reset", json={"token": token, "password": "a-new-Passw0rd-for-fox"}
        )
        assert done.status_code == 200, done.text
        assert done.json()["username"] == username
        assert browser.get("/api/auth/me").status_code == 200  # signed in by the link
    assert login_status(mail_app, username, password) == 401
    assert login_status(mail_app, username, "a-new-Passw0rd-for-fox") == 200
    assert owner.get("/api/auth/me").status_code == 401  # every older session ended
    with mail_app.client() as again:  # the link is spent
        reused = again.post("/api/auth/reset", json={"token": token, "password": "x" * 12})
        assert reused.status_code == 400
        assert "no longer valid" in reused.json()["error"]


def test_forgot_password_answers_the_same_for_unknown_and_admin_addresses(
    mail_app: LiveApp, inbox: tuple[Inbox, int]
) -> None:
    box, _ = inbox
    before = len(box.messages)
    with mail_app.client() as client:
        for address in ("nobody@example.org", "admin@example.org"):
            answer = client.post("/api/auth/register/resend", json={"email": address})
            assert answer.status_code == 202 and answer.json() == {"ok": True}
    assert len(box.messages) == before


def test_a_session_or_draft_token_is_not_a_reset_link(mail_app: LiveApp) -> None:
    client = mail_app.login("alice")
    session = client.cookies.get("datagen_session")
    with mail_app.client() as other:
        answer = other.post("/api/auth/reset", json={"token": session, "password": "x" * 12})
    assert answer.status_code == 400
    assert client.get("/api/auth/me").status_code == 200


def test_resend_is_rate_limited_per_address(mail_app: LiveApp, inbox: tuple[Inbox, int]) -> None:
    signed_up(mail_app, inbox[0], "Walter Skinner", "skinner@example.org")
    with mail_app.client() as client:
        statuses = [
            client.post(
                "/api/auth/register/resend", json={"email": "skinner@example.org"}
            ).status_code
            for _ in range(3)
        ]
        assert statuses == [202, 202, 429]
        limited = client.post("/api/auth/register/resend", json={"email": "skinner@example.org"})
        assert int(limited.headers["Retry-After"]) >= 1


def test_registrations_per_address_are_rate_limited(mail_app: LiveApp) -> None:
    statuses = [register(mail_app, "Walter", "walter@example.org").status_code for _ in range(3)]
    assert statuses == [201, 409, 429]


def test_a_deleted_username_is_never_given_to_the_next_person(
    mail_app: LiveApp, inbox: tuple[Inbox, int]
) -> None:
    """Item 5: deleting bob, then registering bob@another-domain, made the newcomer bob,
    with bob's datasets and saved API key."""
    box, _ = inbox
    assert mail_app.services is not None
    bob, password = signed_up(mail_app, box, "Bob", "bob@example.org")
    owner = mail_app.login(bob, password)
    job_id = confirm(owner)
    mail_app.services.user_settings.put(
        bob,
        UserSettings(
            profiles=[InferenceProfile(id="p1", base_url="https://x.test", api_key="sk-bobs-key")]
        ),
    )
    admin = mail_app.login("admin", ADMIN_PASSWORD)
    gone = admin.request("DELETE", "/api/admin/accounts", json={"username": bob})
    assert gone.status_code == 200 and gone.json() == {"ok": True}
    listed = [a["username"] for a in admin.get("/api/admin/accounts").json()["accounts"]]
    assert bob not in listed  # hidden, as the original lists accounts
    assert owner.get("/api/auth/me").status_code == 401
    assert login_status(mail_app, bob, password) == 401
    # the original's soft delete: the record stays, the index and users entry untouched
    record = mail_app.services.cstore.hget(mail_app.services.settings.auth_hkey, bob)
    assert record["password"] is None and record["metadata"]["__datagemsDeleted"] is True
    assert mail_app.services.users.username_for_email("bob@example.org") == bob

    for address in ("bob@another-domain.org", "BOB@third.example"):
        newcomer, new_password = signed_up(mail_app, box, "Another Bob", address)
        assert newcomer != bob
        other = mail_app.login(newcomer, new_password)
        assert other.get("/api/tasks").json()["jobs"] == []
        assert other.get("/api/user/settings").json()["profiles"] == []
        assert other.get(f"/api/tasks/{job_id}").status_code == 404
    # the deleted owner's own address stays taken until an admin purges the account
    assert register(mail_app, "Bob", "bob@example.org").status_code == 409


def test_a_purge_removes_the_keys_and_jobs_first_and_frees_the_address(
    mail_app: LiveApp, inbox: tuple[Inbox, int]
) -> None:
    box, _ = inbox
    services = mail_app.services
    assert services is not None
    gil, password = signed_up(mail_app, box, "Gil", "gil@example.org")
    owner = mail_app.login(gil, password)
    queued = confirm(owner)
    services.user_settings.put(
        gil,
        UserSettings(profiles=[InferenceProfile(id="p1", base_url="https://x.test", api_key="k")]),
    )
    admin = mail_app.login("admin", ADMIN_PASSWORD)
    purged = admin.request("DELETE", "/api/admin/accounts", json={"username": gil, "purge": True})
    assert purged.status_code == 200, purged.text
    assert purged.json()["purged"] is True and purged.json()["jobsCancelled"] == 1
    assert services.cstore.get(keys.user_settings(gil)) is None
    assert services.cancels.get(queued) is not None  # still queued: cancelled, listed
    assert services.users.get(gil) is None
    assert services.users.username_for_email("gil@example.org") is None
    metadata = services.cstore.hget(services.settings.auth_hkey, gil)["metadata"]
    assert "email" not in metadata and "name" not in metadata
    again, _ = signed_up(mail_app, box, "Gil", "gil@example.org")
    assert again != gil  # the address is free again; the old name never comes back


def test_six_addresses_registered_at_once_get_six_accounts(
    mail_app: LiveApp, inbox: tuple[Inbox, int]
) -> None:
    """Item 6 on one replica: six addresses at the same instant became one username."""
    box, _ = inbox
    addresses = [f"sam@site{n}.example" for n in range(6)]
    with ThreadPoolExecutor(len(addresses) + 2) as pool:
        answers = list(
            pool.map(lambda a: register(mail_app, "Sam", a), [*addresses, addresses[0]] * 1)
        )
    assert sorted(a.status_code for a in answers) == [201] * 6 + [409]
    usernames = {a.json()["email"]: a.json()["username"] for a in answers if a.status_code == 201}
    assert len(set(usernames.values())) == 6
    assert mail_app.services is not None
    for address, username in usernames.items():
        assert mail_app.services.users.username_for_email(address) == username
        message = wait_until(lambda a=address: box.for_address(a), what=f"the mail to {address}")
        assert login_status(mail_app, *credentials(message[-1])) == 200


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Eve\r\nBcc: all@example.org", "email": "eve1@example.org"},
        {"name": "Eve\u2028Bcc: all@example.org", "email": "eve2@example.org"},
        {"name": "Eve\x00", "email": "eve3@example.org"},
        {"name": "Eve", "email": "eve4@example.org\r\nBcc: all@example.org"},
        {"name": "Eve", "email": "eve5\x00@example.org"},
        {"name": "Eve", "email": "eve6@example.org", "country": "France\nforged"},
        {"name": "\u200b\u200d\u2060", "email": "eve7@example.org"},
    ],
    ids=["crlf-name", "line-separator", "nul-name", "crlf-email", "nul-email", "lf-country", "zw"],
)
def test_control_characters_are_refused_and_the_address_stays_free(
    mail_app: LiveApp, inbox: tuple[Inbox, int], body: dict[str, str]
) -> None:
    """Item 11: a CR/LF in the name created an account whose mail could never be sent,
    and the address was burnt (409 on a second try)."""
    with mail_app.client() as client:
        answer = client.post("/api/auth/register", json=body)
    assert answer.status_code == 400, answer.text
    clean = re.sub(r"[\x00-\x1f]|\u2028|Bcc.*", "", body["email"]).strip()
    signed_up(mail_app, inbox[0], "Eve", clean)


def test_registration_input_is_bounded(mail_app: LiveApp) -> None:
    with mail_app.client() as client:
        for body in (
            {"name": "", "email": "a@b.co"},
            {"name": "x" * 121, "email": "a@b.co"},
            {"name": "ok", "email": "not-an-email"},
            {"name": "ok", "email": "a" * 200 + "@b.co"},
            {"name": "ok", "email": "a@b.co", "country": "c" * 121},
        ):
            assert client.post("/api/auth/register", json=body).status_code == 400, body


def test_registration_without_mail_is_503_with_a_clear_message(live: LiveApp) -> None:
    answer = httpx.post(
        f"{live.url}/api/auth/register", json={"name": "A", "email": "a@example.org"}
    )
    assert answer.status_code == 503
    assert "e-mail delivery is not configured" in answer.json()["error"]
    page = httpx.get(f"{live.url}/register")
    assert "Sign-up is off on this server" in page.text
    assert 'id="register-form"' not in page.text  # no form that can only fail
    login = httpx.get(f"{live.url}/login")
    assert 'href="/register"' not in login.text and "Ask an administrator" in login.text
