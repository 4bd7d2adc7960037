"""The account e-mails, over SMTP (``DATAGEN_SMTP_HOST``, ``_PORT``, ``_USER``, ``_PASS``,
``_FROM``): the credentials of a new account, and the link that lets the owner set a new
password. Links start with the configured public address (``DATAGEN_PUBLIC_URL``), never
with anything taken from the request.

Port 465 is implicit TLS; on any other port the connection is upgraded with STARTTLS when
the server offers it; the client logs in only when a user is set. The password and the
link travel only in the message body: never logged, never part of an error message.
"""

from __future__ import annotations

import logging
import socket
import unicodedata
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

import aiosmtplib

from datagems.errors import BadRequest, ServiceUnavailable, UpstreamError
from datagems.settings import Settings

logger = logging.getLogger(__name__)
SMTP_TIMEOUT_SECONDS = 30.0
IMPLICIT_TLS_PORT = 465
SUBJECT = "Your DataGems account"
RESET_SUBJECT = "Set a new DataGems password"


def _clean_header(value: str, what: str) -> str:
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        raise BadRequest(f"{what} is not valid")
    return value.strip()


def credentials_text(name: str, username: str, password: str, app_url: str) -> str:
    return (
        f"Hello {name or username},\n\n"
        "Your DataGems account is ready.\n\n"
        f"  Sign in at: {app_url.rstrip('/')}/login\n"
        f"  Username:   {username}\n"
        f"  Password:   {password}\n\n"
        "Keep this message private. If you did not ask for an account, ignore it.\n\n"
        "-- DataGems\n"
    )


def reset_text(name: str, username: str, link: str, valid_minutes: int) -> str:
    return (
        f"Hello {name or username},\n\n"
        f"Someone asked to set a new password for the DataGems account {username}.\n"
        f"If it was you, open this link within {valid_minutes} minutes and choose one:\n\n"
        f"  {link}\n\n"
        "If it was not you, ignore this message: your password has not changed, and the\n"
        "link stops working once used or expired.\n\n"
        "-- DataGems\n"
    )


class Mailer:
    """Sends the credentials of a new (or reset) account."""

    def __init__(self, settings: Settings) -> None:
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.user = settings.smtp_user
        self._password = settings.smtp_password
        self.sender = settings.smtp_from or (
            settings.smtp_user if settings.smtp_user and "@" in settings.smtp_user else None
        )
        self.timeout = SMTP_TIMEOUT_SECONDS

    def __repr__(self) -> str:
        return f"Mailer(host={self.host!r}, port={self.port!r}, user={self.user!r})"

    @property
    def configured(self) -> bool:
        return bool(self.host and self.sender)

    def check_recipient(self, to: str, name: str) -> None:
        """``BadRequest`` unless ``to`` and ``name`` can be headers: checked before an
        account is written, so a refused mail never leaves an address taken."""
        address = _clean_header(to, "email")
        if "@" not in address:
            raise BadRequest("email is not valid")
        _clean_header(name or "", "name")

    def _message(self, to: str, name: str, subject: str, text: str) -> EmailMessage:
        assert self.sender is not None
        message = EmailMessage()
        message["From"] = _clean_header(self.sender, "DATAGEN_SMTP_FROM")
        self.check_recipient(to, name)
        address = _clean_header(to, "email")
        display = _clean_header(name or "", "name")
        message["To"] = formataddr((display, address)) if display else address
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain=address.rsplit("@", 1)[-1] or None)
        message.set_content(text)
        return message

    async def send_credentials(
        self, to: str, name: str, username: str, password: str, app_url: str
    ) -> None:
        """Mail ``username`` / ``password`` to ``to``.

        ``ServiceUnavailable`` when SMTP is not configured, ``BadRequest`` for an address
        that cannot be a header, ``UpstreamError`` when the server fails.
        """
        text = credentials_text(name, username, password, app_url)
        await self._send(self._ready(to, name, SUBJECT, text), username, password)

    async def send_reset_link(
        self, to: str, name: str, username: str, link: str, valid_minutes: int
    ) -> None:
        """Mail the link that sets a new password (the same errors as ``send_credentials``)."""
        text = reset_text(name, username, link, valid_minutes)
        await self._send(self._ready(to, name, RESET_SUBJECT, text), username, link)

    def _ready(self, to: str, name: str, subject: str, text: str) -> EmailMessage:
        if not self.configured:
            raise ServiceUnavailable(
                "mail is not configured (set DATAGEN_SMTP_HOST and DATAGEN_SMTP_FROM)"
            )
        return self._message(to, name, subject, text)

    async def _send(self, message: EmailMessage, username: str, secret_text: str) -> None:
        implicit_tls = self.port == IMPLICIT_TLS_PORT
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=implicit_tls,
            start_tls=False if implicit_tls else None,  # None: STARTTLS when offered
            local_hostname=socket.gethostname() or "localhost",
        )
        try:
            await client.connect()
            if self.user:
                secret = self._password.get_secret_value() if self._password else ""
                await client.login(self.user, secret)
            await client.send_message(message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            smtp_secret = self._password.get_secret_value() if self._password else ""
            reason = _describe(exc, secret_text, smtp_secret)
            logger.warning("SMTP delivery via %s:%s failed: %s", self.host, self.port, reason)
            # the answer names no host: the server is internal (the log has the reason)
            raise UpstreamError("could not send the e-mail") from None
        finally:
            if client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    client.close()
        logger.info("mail for %s handed to %s", username, self.host)


def _describe(exc: BaseException, *secrets: str) -> str:
    """A short reason for an SMTP failure, scrubbed of the passwords."""
    code = getattr(exc, "code", None)
    text = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
    reason = f"{code} {text}" if isinstance(code, int) else f"{exc.__class__.__name__}: {text}"
    for secret in secrets:
        if secret:
            reason = reason.replace(secret, "***")
    return reason[:300]
