"""The dashboard's pages: server-rendered shells (Jinja2, autoescaped) whose data comes
from the JSON API, read by a little vanilla JS (``static/app.js``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web

from datagems.web.auth import CALLER, caller, require_admin
from datagems.web.keys import MAILER, SERVICES
from datagems.web.presenters import owned_view


def _boot(request: web.Request, **extra: Any) -> dict[str, Any]:
    settings = request.app[SERVICES].settings
    who = request.get(CALLER)
    return {
        "user": {"username": who.username, "role": who.role} if who else None,
        "activePollSeconds": settings.active_poll_seconds,
        "idlePollSeconds": settings.idle_poll_seconds,
        "maxRecords": settings.max_records_per_job,
        "showFailures": settings.show_failures,
        "maxProfiles": settings.max_external_api_configs,
        "builtinMock": settings.uses_mock_inference,  # no gateway set: records are placeholders
        **extra,
    }


def page_context(request: web.Request, page: str, **extra: Any) -> dict[str, Any]:
    return {
        "app": request.app,  # for the url() helper
        "caller": request.get(CALLER),
        "page": page,
        "boot": _boot(request, page=page, **extra),
    }


def _render(request: web.Request, template: str, page: str, **extra: Any) -> web.Response:
    context = page_context(request, page, **extra)
    response = aiohttp_jinja2.render_template(template, request, context)
    response.headers["Cache-Control"] = "no-store"
    return response


def _safe_next(value: str | None) -> str:
    """Only a local path: never an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    parts = urlsplit(value)
    return "/" if parts.scheme or parts.netloc or "\\" in value else value


async def login_page(request: web.Request) -> web.StreamResponse:
    if request.get(CALLER):
        raise web.HTTPFound(_safe_next(request.query.get("next")))
    return _render(
        request,
        "login.html",
        "login",
        next=_safe_next(request.query.get("next")),
        mailReady=request.app[MAILER].configured,
    )


async def register_page(request: web.Request) -> web.StreamResponse:
    return _render(request, "register.html", "register", mailReady=request.app[MAILER].configured)


async def reset_page(request: web.Request) -> web.StreamResponse:
    """The mailed link lands here; its token is in the fragment, so it never reaches a
    server log: the page's script reads it and posts it with the new password."""
    return _render(request, "reset.html", "reset")


async def jobs_page(request: web.Request) -> web.Response:
    caller(request)
    return _render(request, "jobs.html", "jobs")


async def new_page(request: web.Request) -> web.Response:
    caller(request)
    preset = request.app[SERVICES].settings.ui_test_preset or {}
    return _render(request, "new.html", "new", preset=preset)


async def job_page(request: web.Request) -> web.Response:
    cached = await owned_view(request, request.match_info["id"])
    return _render(request, "job.html", "job", jobId=cached.view.job.id)


async def stats_page(request: web.Request) -> web.Response:
    caller(request)
    return _render(request, "stats.html", "stats")


async def settings_page(request: web.Request) -> web.Response:
    caller(request)
    return _render(request, "settings.html", "settings")


async def admin_page(request: web.Request) -> web.Response:
    require_admin(request)
    return _render(request, "admin.html", "admin")
