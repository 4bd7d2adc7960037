"""``/api/auth/*``: login, logout, me, register, "forgot my password" and its link."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from aiohttp import web

from datagems.accounts.tokens import (
    INVALID_RESET,
    RESET_TTL_SECONDS,
    SESSION_TTL_SECONDS,
    issue_reset,
    issue_session,
    read_reset,
    reset_is_current,
)
from datagems.accounts.users import Account, generate_password
from datagems.errors import BadRequest, DatagemsError, NotFound, ServiceUnavailable, UpstreamError
from datagems.store.repos import normalize_email
from datagems.web.auth import (
    caller,
    clear_session_cookie,
    session_secret,
    set_session_cookie,
    token_of,
)
from datagems.web.bodies import LoginBody, RegisterBody, ResendBody, ResetBody, read_body
from datagems.web.keys import (
    ACCOUNTS,
    LIMITERS,
    LOGIN_LIMITS,
    MAILER,
    READ_CACHE,
    REGISTRAR,
    SERVICES,
)

logger = logging.getLogger(__name__)
MAIL_NOT_CONFIGURED = (
    "Registration is unavailable: e-mail delivery is not configured on this server "
    "(DATAGEN_SMTP_HOST). Ask an administrator for an account."
)


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


async def _authenticate(request: web.Request) -> Account:
    """The account of a ``{username, password}`` body: the same checks, the same error for
    every failure, and the same sign-in limits (failures per username and per address,
    counted across replicas: 429 once used up) for the cookie sign-in and the API token."""
    body = await read_body(request, LoginBody)
    limits = request.app[LOGIN_LIMITS]
    accounts = request.app[ACCOUNTS]
    address = client_ip(request)
    await asyncio.to_thread(limits.check, body.username, address)
    try:
        account = await asyncio.to_thread(accounts.authenticate, body.username, body.password)
    except DatagemsError:
        await asyncio.to_thread(limits.failed, body.username, address)
        raise
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
    """End this session on every replica (the token is refused from now on), and clear
    the cookie."""
    who = caller(request)
    token, _ = token_of(request)
    cache = request.app[READ_CACHE]
    if token:
        session = cache.session(session_secret(request), token)
        expires = session.expires if session else None
        try:
            await asyncio.to_thread(cache.revocations.revoke, token, who.username, expires)
        finally:
            cache.users_changed()
    response = web.json_response({"ok": True})
    clear_session_cookie(request, response)
    logger.info("%s signed out", who.username)
    return response


async def me(request: web.Request) -> web.Response:
    """The signed-in user, and the limits a client checks before asking (ours)."""
    who = caller(request)
    settings = request.app[SERVICES].settings
    return web.json_response(
        {
            "username": who.username,
            "role": who.role,
            "limits": {"maxRecordsPerJob": settings.max_records_per_job},
        }
    )


async def register(request: web.Request) -> web.Response:
    """A new account for an address, its password e-mailed (``accounts.registration``)."""
    mailer = request.app[MAILER]
    if not mailer.configured:
        raise ServiceUnavailable(MAIL_NOT_CONFIGURED)
    body = await read_body(request, RegisterBody)
    mailer.check_recipient(body.email, body.name)  # before anything is written
    limiters = request.app[LIMITERS]
    await asyncio.to_thread(limiters.register_ip.hit, client_ip(request))
    await asyncio.to_thread(limiters.register_email.hit, body.email)
    password = generate_password()
    try:
        registered = await asyncio.to_thread(
            request.app[REGISTRAR].register, body.email, body.name, body.country, password
        )
    finally:
        request.app[READ_CACHE].users_changed()
    settings = request.app[SERVICES].settings
    try:
        await mailer.send_credentials(
            registered.email, body.name, registered.username, password, settings.app_url
        )
    except DatagemsError as exc:
        logger.warning("credentials mail for %s not delivered: %s", registered.username, exc)
        raise UpstreamError(
            "your account was created but the e-mail could not be delivered; "
            "use “Forgot your password?” in a moment"
        ) from exc
    return web.json_response(
        {"ok": True, "username": registered.username, "email": registered.email}, status=201
    )


def _reset_target(request: web.Request, email: str) -> tuple[Account, str] | None:
    """The live account an address belongs to and the name to greet, or ``None``.

    The index must name an account whose own record carries this address: an index
    entry of another app (or of an earlier bug) never sends someone else's link."""
    services = request.app[SERVICES]
    username = services.users.username_for_email(email)
    account = request.app[ACCOUNTS].get(username) if username else None
    if account is None or account.deleted or account.role == "admin":
        return None
    stored = account.metadata.get("email")
    if not isinstance(stored, str) or normalize_email(stored) != email:
        return None
    entry = services.users.get(account.username)
    return account, (entry.name if entry else None) or account.username


async def resend(request: web.Request) -> web.Response:
    """ "Forgot your password?": e-mail the owner a one-hour, single-use link that lets
    them choose a new password. Nothing changes until they open it; the answer is the
    same whether or not the address has an account."""
    mailer = request.app[MAILER]
    if not mailer.configured:
        raise ServiceUnavailable(MAIL_NOT_CONFIGURED)
    body = await read_body(request, ResendBody)
    if "@" not in body.email:
        raise BadRequest("email is not valid")
    limiters = request.app[LIMITERS]
    await asyncio.to_thread(limiters.resend_ip.hit, client_ip(request))
    await asyncio.to_thread(limiters.resend_email.hit, body.email)
    email = normalize_email(body.email)
    found = await asyncio.to_thread(_reset_target, request, email)
    if found is None:
        return web.json_response({"ok": True}, status=202)
    account, name = found
    settings = request.app[SERVICES].settings
    token = issue_reset(session_secret(request), account.username, account.credential)
    link = f"{settings.app_url}/reset#token={token}"
    try:
        await mailer.send_reset_link(email, name, account.username, link, RESET_TTL_SECONDS // 60)
    except DatagemsError as exc:
        logger.warning("reset mail for %s not delivered: %s", account.username, exc)
        raise UpstreamError("the e-mail could not be delivered; try again later") from exc
    logger.info("password reset link sent to the owner of %s", account.username)
    return web.json_response({"ok": True}, status=202)


async def reset_password(request: web.Request) -> web.Response:
    """The owner, from the mailed link, sets a new password: every session of the account
    ends, the link is spent, and this browser is signed in."""
    body = await read_body(request, ResetBody)
    secret = session_secret(request)
    claim = read_reset(secret, body.token)
    accounts = request.app[ACCOUNTS]
    account = await asyncio.to_thread(accounts.get, claim.username)
    if (
        account is None
        or account.deleted
        or not reset_is_current(secret, claim, account.credential)
    ):
        raise BadRequest(INVALID_RESET)
    try:
        await asyncio.to_thread(accounts.set_password, account.username, body.password)
    except NotFound:
        raise BadRequest(INVALID_RESET) from None
    finally:
        request.app[READ_CACHE].users_changed()
    fresh = await asyncio.to_thread(accounts.get, account.username)
    if fresh is None:
        raise BadRequest(INVALID_RESET)
    token = issue_session(secret, fresh.username, fresh.role, credential=fresh.credential)
    response = web.json_response({"username": fresh.username, "role": fresh.role})
    set_session_cookie(request, response, token)
    logger.info("%s set a new password from a reset link", fresh.username)
    return response
