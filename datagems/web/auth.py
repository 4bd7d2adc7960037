"""Who is calling: the session from the cookie or a Bearer token, and the same-origin rule.

A request carries its caller as ``request[CALLER]`` once the auth middleware has run. A
Bearer request is an API client: it is exempt from the Origin check, since a browser never
adds that header by itself. A cookie request with an unsafe method must come from a page
of this site (same ``Origin``, or ``Referer`` when there is no ``Origin``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from datagems.accounts.tokens import (
    SESSION_COOKIE,
    SESSION_TTL_SECONDS,
    session_is_current,
    token_digest,
)
from datagems.errors import Forbidden, Unauthorized
from datagems.web.keys import READ_CACHE, ROUTE_SPECS, SERVICES

logger = logging.getLogger(__name__)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Caller:
    username: str
    role: str
    via: str  # "cookie" | "bearer"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


CALLER = web.RequestKey("caller", Caller)


def caller(request: web.Request) -> Caller:
    """The signed-in caller (the auth middleware guarantees one on non-public routes)."""
    found = request.get(CALLER)
    if found is None:
        raise Unauthorized("authentication required")
    return found


def require_admin(request: web.Request) -> Caller:
    who = caller(request)
    if not who.is_admin:
        raise Forbidden("administrators only")
    return who


def session_secret(request: web.Request) -> str:
    secret = request.app[SERVICES].settings.session_secret
    if secret is None:
        raise RuntimeError("DATAGEN_SESSION_SECRET is not set")
    return secret.get_secret_value()


def is_secure(request: web.Request) -> bool:
    return request.secure or request.app[SERVICES].settings.cookie_secure


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_TTL_SECONDS,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=is_secure(request),
    )


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="Lax", secure=is_secure(request)
    )


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc.lower()


def check_same_origin(request: web.Request, *, has_cookie_session: bool) -> None:
    """403 for an unsafe cookie request that does not come from a page of this site."""
    origin = request.headers.get("Origin")
    referer = request.headers.get("Referer")
    source = None
    if origin and origin != "null":
        source = _origin_of(origin)
    elif referer:
        source = _origin_of(referer)
    elif origin == "null":
        raise Forbidden("cross-origin request refused")
    if source is None:
        if has_cookie_session:
            raise Forbidden("cross-origin request refused: Origin or Referer required")
        return
    if source != request.host.lower():
        raise Forbidden("cross-origin request refused")


def token_of(request: web.Request) -> tuple[str | None, str]:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None, "bearer"
    return request.cookies.get(SESSION_COOKIE) or None, "cookie"


async def resolve_caller(request: web.Request, token: str, via: str) -> Caller | None:
    """The caller of a session token, its account as stored at most
    ``cache.READ_TTL_SECONDS`` ago (a deletion, a new password or a new role on another
    replica shows that late; one made here at once). Usually answered without a store
    read."""
    cache = request.app[READ_CACHE]
    secret = session_secret(request)
    session = cache.session(secret, token)
    if session is None:
        return None
    if await cache.revoked(token_digest(token)):  # signed out, here or on another replica
        return None
    account = await cache.account(session.username)
    if account is None or account.deleted:  # deleted since the session was issued
        return None
    if not session_is_current(secret, session, account.credential):
        return None  # issued under a password the account no longer has
    return Caller(account.username, account.role or "user", via)


def _is_public(request: web.Request) -> tuple[bool, bool]:
    """(known route, public) for the matched route."""
    info = request.match_info
    if info.http_exception is not None:
        return False, True
    route = info.route
    if isinstance(route.resource, web.StaticResource):
        return True, True
    method = "GET" if route.method == "HEAD" else route.method
    canonical = route.resource.canonical if route.resource else ""
    spec = request.app[ROUTE_SPECS].get((method, canonical))
    return True, bool(spec and spec.public)


def wants_page(request: web.Request) -> bool:
    path = request.path
    return not (path.startswith("/api/") or path == "/metrics")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    known, public = _is_public(request)
    if not known:
        return await handler(request)
    token, via = token_of(request)
    who = await resolve_caller(request, token, via) if token else None
    if request.method in UNSAFE_METHODS and via != "bearer":
        check_same_origin(request, has_cookie_session=who is not None)
    if who is not None:
        request[CALLER] = who
    elif not public:
        if wants_page(request) and request.method == "GET":
            target = request.path_qs if request.path != "/" else ""
            location = "/login" + (f"?next={_quote(target)}" if target else "")
            raise web.HTTPFound(location)
        raise Unauthorized("authentication required")
    return await handler(request)


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="/")
