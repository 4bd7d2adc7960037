"""Every ``web.AppKey`` of the app, in one place."""

from __future__ import annotations

from aiohttp import web

from datagems.services import Services

SERVICES = web.AppKey("services", Services)
