"""``/api/auth/*``: login, logout, me, register and resend."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from datetime import UTC, datetime

from aiohttp import web

from datagems.accounts.tokens import SESSION_TTL_SECONDS, issue_session
from datagems.accounts.users import Account, canonical_username, generate_password
from datagems.errors import BadRequest, Conflict, DatagemsError, ServiceUnavailable, UpstreamError
from datagems.models import UserIndexEntry, now_iso
from datagems.web.auth import caller, clear_session_cookie, session_secret, set_session_cookie
from datagems.web.bodies import LoginBody, RegisterBody, ResendBody, read_body
from datagems.web.keys import ACCOUNTS, LIMITERS, MAILER, READ_CACHE, SERVICES, THROTTLE

logger = logging.getLogger(__name__)
MAIL_NOT_CONFIGURED = (
    "Registration is unavailable: e-mail delivery is not configured on this server "
    "(DATAGEN_SMTP_HOST). Ask an administrator for an account."
)


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


async def _authenticate(request: web.Request) -> Account:
    """The account of a ``{username, password}`` body: the same checks, the same error for
    every failure, and the same per-user and per-IP throttle for the cookie sign-in and
    the API token."""
    body = await read_body(request, LoginBody)
    throttle = request.app[THROTTLE]
    accounts = request.app[ACCOUNTS]
    ip = client_ip(request)
    name = body.username.strip().lower()
    delay = await asyncio.to_thread(throttle.delay_for, name, ip)
    if delay > 0:
        await asyncio.sleep(delay)
    try:
        account = await asyncio.to_thread(accounts.authenticate, body.username, body.password)
    except DatagemsError:
        await asyncio.to_thread(throttle.failed, name, ip)
        raise
    await asyncio.to_thread(throttle.succeeded, name, ip)
    return account


async def login(request: web.Request) -> web.Response:
    account = await _authenticate(request)
    token = issue_session(
        session_secret(request), account.username, account.role, credential=account.credential
    )
    response = web.json_response({"username": account.username, "role": account.role})
    set_session_cookie(request, response, token)
    logger.info("%s signed in", account.username)
    return response


async def token(request: web.Request) -> web.Response:
    """A session token for an API client, in the body (no cookie): send it as
    ``Authorization: Bearer <token>``. It is the same 7-day session as the cookie's."""
    account = await _authenticate(request)
    issued = int(time.time())
    token = issue_session(
        session_secret(request),
        account.username,
        account.role,
        credential=account.credential,
        now=issued,
    )
    expires = datetime.fromtimestamp(issued + SESSION_TTL_SECONDS, UTC)
    logger.info("%s signed in for an API token", account.username)
    response = web.json_response(
        {
            "token": token,
            "tokenType": "Bearer",
            "expiresAt": expires.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "username": account.username,
            "role": account.role,
        }
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def logout(request: web.Request) -> web.Response:
    response = web.json_response({"ok": True})
    clear_session_cookie(request, response)
    return response


async def me(request: web.Request) -> web.Response:
    who = caller(request)
    return web.json_response({"username": who.username, "role": who.role})


def app_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _username_base(email: str) -> str:
    local = email.split("@", 1)[0].lower()
    base = re.sub(r"[^a-z0-9._-]+", "-", local).strip(".-_")[:48]
    return base if len(base) >= 3 else (base + "-user")[:48].strip("-") or "user"


def _free_username(request: web.Request, email: str) -> str:
    accounts = request.app[ACCOUNTS]
    base = canonical_username(_username_base(email))
    if accounts.get(base) is None:
        return base
    for _ in range(20):
        candidate = canonical_username(f"{base}-{secrets.randbelow(9000) + 1000}")
        if accounts.get(candidate) is None:
            return candidate
    raise Conflict("could not find a free username; try again")


async def register(request: web.Request) -> web.Response:
    mailer = request.app[MAILER]
    if not mailer.configured:
        raise ServiceUnavailable(MAIL_NOT_CONFIGURED)
    body = await read_body(request, RegisterBody)
    limiters = request.app[LIMITERS]
    await asyncio.to_thread(limiters.register_ip.hit, client_ip(request))
    await asyncio.to_thread(limiters.register_email.hit, body.email)
    services = request.app[SERVICES]
    if await asyncio.to_thread(services.users.username_for_email, body.email):
        raise Conflict("an account with this e-mail address already exists")
    username = await asyncio.to_thread(_free_username, request, body.email)
    password = generate_password()
    metadata = {"email": body.email, "name": body.name, "country": body.country}
    try:
        await asyncio.to_thread(
            request.app[ACCOUNTS].create, username, password, role="user", metadata=metadata
        )
    finally:
        request.app[READ_CACHE].users_changed()
    entry = UserIndexEntry(
        username=username,
        email=body.email,
        name=body.name,
        country=body.country or None,
        created_at=now_iso(),
        job_count=0,
    )
    await asyncio.to_thread(services.users.put, entry)
    logger.info("registered %s", username)
    try:
        await mailer.send_credentials(body.email, body.name, username, password, app_url(request))
    except DatagemsError as exc:
        logger.warning("credentials mail for %s not delivered: %s", username, exc)
        raise UpstreamError(
            "your account was created but the e-mail could not be delivered; "
            "use “resend” in a moment"
        ) from exc
    return web.json_response({"ok": True, "username": username, "email": body.email}, status=201)


async def resend(request: web.Request) -> web.Response:
    """A new password, e-mailed (the old one is not stored, so it cannot be re-sent)."""
    mailer = request.app[MAILER]
    if not mailer.configured:
        raise ServiceUnavailable(MAIL_NOT_CONFIGURED)
    body = await read_body(request, ResendBody)
    if "@" not in body.email:
        raise BadRequest("email is not valid")
    limiters = request.app[LIMITERS]
    await asyncio.to_thread(limiters.resend_ip.hit, client_ip(request))
    await asyncio.to_thread(limiters.resend_email.hit, body.email)
    services = request.app[SERVICES]
    accounts = request.app[ACCOUNTS]
    username = await asyncio.to_thread(services.users.username_for_email, body.email)
    account = await asyncio.to_thread(accounts.get, username) if username else None
    if account is None or account.role == "admin":
        # the same answer whether or not the address is known: no account enumeration
        return web.json_response({"ok": True}, status=202)
    entry = await asyncio.to_thread(services.users.get, account.username)
    password = generate_password()
    try:
        await asyncio.to_thread(accounts.set_password, account.username, password)
    finally:
        request.app[READ_CACHE].users_changed()
    name = (entry.name if entry else None) or account.username
    try:
        await mailer.send_credentials(
            body.email, name, account.username, password, app_url(request)
        )
    except DatagemsError as exc:
        logger.warning("credentials mail for %s not delivered: %s", account.username, exc)
        raise UpstreamError("the e-mail could not be delivered; try again later") from exc
    logger.info("credentials re-sent to the owner of %s", account.username)
    return web.json_response({"ok": True}, status=202)
