"""App factory: ``create_app(services)`` builds the aiohttp application.

Middlewares, outermost first: errors (one JSON shape for every failure), then auth
(session from the cookie or a Bearer token, the same-origin rule). Resources live in a
``cleanup_ctx``: built when the app starts, released when it stops. Every response carries
a strict Content-Security-Policy (no inline script): user strings are only ever inserted
as text, and even a slip could not run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from datagems.accounts.mailer import Mailer
from datagems.accounts.ratelimit import LoginLimits, WindowLimiter
from datagems.accounts.registration import Registrar
from datagems.accounts.users import Accounts
from datagems.job.browse import RecordIndex
from datagems.services import Services
from datagems.web.api_report import REPORT_CACHE, ReportCache
from datagems.web.auth import auth_middleware
from datagems.web.cache import WebCache
from datagems.web.keys import (
    ACCOUNTS,
    LIMITERS,
    LOGIN_LIMITS,
    MAILER,
    READ_CACHE,
    RECORD_INDEX,
    REGISTRAR,
    SERVICES,
    STATE,
)
from datagems.web.middleware import error_middleware
from datagems.web.routes import setup_routes
from datagems.web.state import Limiters, WebState

TEMPLATES = Path(__file__).parent / "templates"
PREVIEW_WINDOW_SECONDS = 600
PREVIEW_MAX_PER_USER = 40
# aiohttp's parser refuses a request line or a header over 8190 bytes with a text/plain 400
# before any middleware runs. 32 KiB lets a long (10 kB) job id, username or Authorization
# value reach the app, which answers JSON (404 / 401); past it the parser's 400 stands.
MAX_LINE_BYTES = 32 * 1024
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def _limiters(services: Services) -> Limiters:
    s = services.settings
    peer = s.host_addr

    def limiter(scope: str, window: int, hits: int) -> WindowLimiter:
        return WindowLimiter(
            services.cstore, scope=scope, peer_id=peer, window_seconds=window, max_hits=hits
        )

    return Limiters(
        register_ip=limiter("register-ip", s.register_window_seconds, s.register_max_per_ip),
        register_email=limiter(
            "register-email", s.register_window_seconds, s.register_max_per_email
        ),
        resend_ip=limiter("resend-ip", s.resend_window_seconds, s.resend_max_per_ip),
        resend_email=limiter("resend-email", s.resend_window_seconds, s.resend_max_per_email),
        preview_user=limiter("preview-user", PREVIEW_WINDOW_SECONDS, PREVIEW_MAX_PER_USER),
    )


async def _resources(app: web.Application) -> AsyncIterator[None]:
    app[STATE] = WebState()
    yield
    app[STATE].stopping.set()
    await app[READ_CACHE].close()
    app[STATE].export_pool.shutdown(wait=False, cancel_futures=True)


async def _stop_streams(app: web.Application) -> None:
    """Live event streams end at shutdown, so the server does not wait on them."""
    app[STATE].stopping.set()


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", CSP)


def create_app(services: Services) -> web.Application:
    settings = services.settings
    if settings.session_secret is None or settings.auth_secret is None:
        raise RuntimeError(
            "the session secret and the auth pepper must be set (with_local_secrets)"
        )
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[error_middleware, auth_middleware],
        handler_args={"max_line_size": MAX_LINE_BYTES, "max_field_size": MAX_LINE_BYTES},
    )
    app[SERVICES] = services
    app[ACCOUNTS] = Accounts(
        services.cstore, settings.auth_hkey, settings.auth_secret.get_secret_value()
    )
    app[READ_CACHE] = WebCache(services, app[ACCOUNTS])
    app[REPORT_CACHE] = ReportCache()  # the quality reports (issue 17)
    app[RECORD_INDEX] = RecordIndex()  # the records view's pages (datagems.job.browse)
    app[LOGIN_LIMITS] = LoginLimits(
        services.cstore,
        peer_id=settings.host_addr,
        window_seconds=settings.login_window_seconds,
        per_account=settings.login_max_failures_per_account,
        per_address=settings.login_max_failures_per_address,
    )
    app[REGISTRAR] = Registrar(
        app[ACCOUNTS], services.users, settings.auth_secret.get_secret_value()
    )
    app[MAILER] = Mailer(settings)
    app[LIMITERS] = _limiters(services)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    )
    app.cleanup_ctx.append(_resources)
    app.on_shutdown.append(_stop_streams)
    app.on_response_prepare.append(_security_headers)
    setup_routes(app)
    return app
