"""Sign-up by e-mail, against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.servers import free_port, wait_until
from tests.web.harness import LiveApp


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def for_address(self, address: str) -> list[Message]:
        return [m for m in self.messages if address in m["To"]]


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
        register_max_per_email=2,
        resend_max_per_email=1,
    ).start()
    yield app
    app.stop()


def credentials(message: Message) -> tuple[str, str]:
    body = message.get_payload(decode=True).decode()
    username = re.search(r"[Uu]sername:\s*(\S+)", body)
    password = re.search(r"[Pp]assword:\s*(\S+)", body)
    assert username and password, body
    return username.group(1), password.group(1)


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
        assert mailed_username == username == "dana"
        login = client.post("/api/auth/login", json={"username": username, "password": password})
        assert login.status_code == 200 and login.json() == {"username": "dana", "role": "user"}
        again = client.post(
            "/api/auth/register", json={"name": "Dana", "email": "dana@example.org"}
        )
        assert again.status_code == 409


def test_resend_mails_a_new_password_and_is_rate_limited(
    mail_app: LiveApp, inbox: tuple[Inbox, int]
) -> None:
    box, _ = inbox
    with mail_app.client() as client:
        client.post("/api/auth/register", json={"name": "Fox", "email": "fox@example.org"})
        wait_until(lambda: box.for_address("fox@example.org"), what="the first mail")
        answer = client.post("/api/auth/register/resend", json={"email": "fox@example.org"})
        assert answer.status_code == 202
        second = wait_until(lambda: box.for_address("fox@example.org")[1:], what="the second mail")[
            0
        ]
        username, password = credentials(second)
        login = client.post("/api/auth/login", json={"username": username, "password": password})
        assert login.status_code == 200
        limited = client.post("/api/auth/register/resend", json={"email": "fox@example.org"})
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        unknown = client.post("/api/auth/register/resend", json={"email": "nobody@example.org"})
        assert unknown.status_code == 202


def test_registrations_per_address_are_rate_limited(mail_app: LiveApp) -> None:
    with mail_app.client() as client:
        statuses = [
            client.post(
                "/api/auth/register", json={"name": "Walter", "email": "walter@example.org"}
            ).status_code
            for _ in range(3)
        ]
    assert statuses == [201, 409, 429]


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
    assert "Sign-up is unavailable here" in page.text
