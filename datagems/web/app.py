"""App factory: ``create_app(services)`` builds the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from datagems.services import Services
from datagems.web.keys import SERVICES


async def health(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    return web.json_response({"ok": True, "peerId": services.settings.host_addr})


def create_app(services: Services) -> web.Application:
    app = web.Application(client_max_size=services.settings.max_body_bytes)
    app[SERVICES] = services
    app.router.add_get("/api/health", health)
    return app
