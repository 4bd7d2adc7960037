"""``/api/admin/accounts/*`` (ours): an administrator makes an account or gives one a new
password, without mail, so an install without SMTP still gets its users.

A new account goes through the registrar (``accounts.registration``: username derived from
the address, claim then verify), so one account per e-mail address holds whoever makes it,
a visitor signing up or an administrator. The password is generated here and shown once,
in the answer (``Cache-Control: no-store``), for the administrator to hand over; it is
never logged or stored in clear.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from datagems.accounts.users import generate_password
from datagems.errors import BadRequest, NotFound
from datagems.web.auth import require_admin
from datagems.web.bodies import AccountCreateBody, PasswordResetBody, read_body
from datagems.web.keys import ACCOUNTS, READ_CACHE, REGISTRAR

logger = logging.getLogger(__name__)


def _once(answer: dict[str, object], status: int = 200) -> web.Response:
    response = web.json_response(answer, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


async def create_account(request: web.Request) -> web.Response:
    """A new user account for an address, with a generated password shown once: 201
    ``{username, email, password}``; 409 when the address has an account."""
    who = require_admin(request)
    body = await read_body(request, AccountCreateBody)
    password = generate_password()
    try:
        registered = await asyncio.to_thread(
            request.app[REGISTRAR].register, body.email, body.name, body.country, password
        )
    finally:
        request.app[READ_CACHE].users_changed()
    logger.info("%s created account %s", who.username, registered.username)
    return _once(
        {"username": registered.username, "email": registered.email, "password": password},
        status=201,
    )


async def reset_account_password(request: web.Request) -> web.Response:
    """A new generated password for another account, shown once: ``{username, password}``.
    Every session of that account ends (its credential changed)."""
    who = require_admin(request)
    body = await read_body(request, PasswordResetBody)
    username = body.username.strip().lower()
    if username == who.username:
        raise BadRequest("you cannot reset your own password here")
    accounts = request.app[ACCOUNTS]
    found = await asyncio.to_thread(accounts.get, username)
    if found is None or found.deleted:
        raise NotFound("account not found")
    password = generate_password()
    try:
        await asyncio.to_thread(accounts.set_password, found.username, password)
    finally:
        request.app[READ_CACHE].users_changed()
    logger.info("%s reset the password of %s", who.username, found.username)
    return _once({"username": found.username, "password": password})
