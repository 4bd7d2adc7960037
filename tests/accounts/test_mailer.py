"""The credentials mail, delivered to a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from datagems.accounts.mailer import Mailer
from datagems.bench.procs import free_port
from datagems.errors import BadRequest, ServiceUnavailable, UpstreamError
from datagems.settings import Settings

PASSWORD = "Gen3rated-Passw0rd"


@dataclass
class Inbox:
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    refuse_recipients: bool = False

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refuse_recipients:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, secret = data.login.decode(), data.password.decode()
            self.logins.append((user, secret))
            return AuthResult(success=(user, secret) == ("mailer", "smtp-secret"), handled=False)
        return AuthResult(success=False, handled=False)


@dataclass
class SmtpServer:
    inbox: Inbox
    port: int


def _start(inbox: Inbox, **options: Any) -> tuple[Controller, int]:
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=inbox.authenticate,
        auth_require_tls=False,
        **options,
    )
    controller.start()
    return controller, port


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    inbox = Inbox()
    controller, port = _start(inbox)
    try:
        yield SmtpServer(inbox, port)
    finally:
        controller.stop()


def mail_settings(port: int, **changes: Any) -> Settings:
    base = Settings(
        smtp_host="127.0.0.1", smtp_port=port, smtp_from="DataGems <noreply@example.com>"
    )
    return base.replace(**changes)


def send(mailer: Mailer, to: str = "ada@example.com", name: str = "Ada") -> None:
    asyncio.run(mailer.send_credentials(to, name, "ada", PASSWORD, "http://127.0.0.1:3000"))


def test_the_credentials_are_delivered_with_the_password_in_the_body(smtp: SmtpServer) -> None:
    send(Mailer(mail_settings(smtp.port)))
    assert len(smtp.inbox.messages) == 1
    mail_from, rcpt, content = smtp.inbox.messages[0]
    assert mail_from == "noreply@example.com"
    assert rcpt == ["ada@example.com"]
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert message["Subject"] == "Your DataGems account"
    assert message["To"] == "Ada <ada@example.com>"
    body = message.get_content()
    assert PASSWORD in body
    assert "Username:   ada" in body
    assert "http://127.0.0.1:3000/login" in body
    assert smtp.inbox.logins == []  # no user set: no login


def test_the_mailer_logs_in_when_a_user_is_set(smtp: SmtpServer) -> None:
    settings = mail_settings(smtp.port, smtp_user="mailer", smtp_password=SecretStr("smtp-secret"))
    send(Mailer(settings))
    assert smtp.inbox.logins == [("mailer", "smtp-secret")]
    assert len(smtp.inbox.messages) == 1


def test_a_refused_login_is_an_upstream_error(smtp: SmtpServer) -> None:
    settings = mail_settings(smtp.port, smtp_user="mailer", smtp_password=SecretStr("wrong"))
    with pytest.raises(UpstreamError) as caught:
        send(Mailer(settings))
    assert "wrong" not in str(caught.value)
    assert smtp.inbox.messages == []


def test_a_refused_recipient_is_an_upstream_error_without_the_password(
    smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    smtp.inbox.refuse_recipients = True
    with caplog.at_level(logging.DEBUG), pytest.raises(UpstreamError) as caught:
        send(Mailer(mail_settings(smtp.port)))
    assert PASSWORD not in str(caught.value)
    assert not [r for r in caplog.records if PASSWORD in r.getMessage()]
    assert caught.value.status == 502


def test_an_unreachable_server_is_an_upstream_error_naming_no_host() -> None:
    port = free_port()
    with pytest.raises(UpstreamError) as caught:
        send(Mailer(mail_settings(port)))
    assert "127.0.0.1" not in str(caught.value) and str(port) not in str(caught.value)


def test_the_reset_mail_carries_the_link_and_says_nothing_changed_yet(smtp: SmtpServer) -> None:
    link = "https://gems.example.org/reset#token=abc.def.ghi"
    asyncio.run(
        Mailer(mail_settings(smtp.port)).send_reset_link(
            "ada@example.com", "Ada", "ada_1", link, 60
        )
    )
    message = email.message_from_bytes(smtp.inbox.messages[0][2], policy=email.policy.default)
    assert message["Subject"] == "Set a new DataGems password"
    body = message.get_content()
    assert link in body and "ada_1" in body and "within 60 minutes" in body
    assert "your password has not changed" in body


@pytest.mark.parametrize("name", ["Ada\u2028Bcc: eve@x", "Ada\x00", "Ada\x1b[2J"])
def test_every_control_character_in_a_header_value_is_refused(name: str) -> None:
    with pytest.raises(BadRequest):
        Mailer(mail_settings(free_port())).check_recipient("ada@example.com", name)


def test_the_password_is_never_logged(smtp: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        send(Mailer(mail_settings(smtp.port)))
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("mail.log")]
    assert ours  # something was logged (the test server's own DATA log is not ours)...
    assert not [line for line in ours if PASSWORD in line]  # ...but never the password


def test_without_smtp_settings_the_mailer_is_not_configured() -> None:
    mailer = Mailer(Settings())
    assert not mailer.configured
    with pytest.raises(ServiceUnavailable) as caught:
        send(mailer)
    assert caught.value.status == 503
    assert "mail is not configured" in str(caught.value)


def test_a_host_without_a_sender_is_not_configured() -> None:
    assert not Mailer(Settings(smtp_host="127.0.0.1")).configured
    assert Mailer(Settings(smtp_host="127.0.0.1", smtp_user="bot@example.com")).configured


@pytest.mark.parametrize(
    ("to", "name"),
    [("ada@example.com\r\nBcc: eve@example.com", "Ada"), ("ada@example.com", "Ada\nBcc: eve@x")],
    ids=["address", "name"],
)
def test_a_header_injection_is_a_bad_request(smtp: SmtpServer, to: str, name: str) -> None:
    with pytest.raises(BadRequest):
        send(Mailer(mail_settings(smtp.port)), to=to, name=name)
    assert smtp.inbox.messages == []


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


def test_starttls_is_used_when_offered_and_an_untrusted_certificate_fails_closed(
    tmp_path: Path,
) -> None:
    inbox = Inbox()
    controller, port = _start(inbox, tls_context=_self_signed(tmp_path))
    try:
        with pytest.raises(UpstreamError):
            send(Mailer(mail_settings(port)))
        assert inbox.messages == []  # never sent in clear after STARTTLS was offered
    finally:
        controller.stop()
