"""``datagems replica``: one process per peer id, serving the web app and running workers.

Start order: settings -> stores -> built-in mock gateway (when no gateway is configured)
-> bootstrap admin -> actors -> web. Stop order is the reverse, on SIGTERM or SIGINT,
and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from aiohttp import web

from datagems import logs
from datagems.services import Services, with_local_secrets
from datagems.settings import Settings

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--peer-id", help="this replica's peer id (shorthand for R1EN_HOST_ADDR)")


def settings_from(args: argparse.Namespace) -> Settings:
    env = dict(os.environ)
    if args.peer_id:
        env["R1EN_HOST_ADDR"] = args.peer_id
    return with_local_secrets(Settings.from_env(env))


def main(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    logs.configure(settings.log_level, settings.host_addr)
    asyncio.run(serve(settings))
    return 0


def bootstrap_admin(services: Services) -> str | None:
    """Create the ``admin`` account once; returns a generated password to print once."""
    from datagems.accounts.users import Accounts

    settings = services.settings
    assert settings.auth_secret is not None
    accounts = Accounts(
        services.cstore, settings.auth_hkey, settings.auth_secret.get_secret_value()
    )
    given = settings.bootstrap_admin_password
    return accounts.bootstrap_admin(given.get_secret_value() if given else None)


def repair_email_index(services: Services) -> None:
    """Rewrite e-mail index entries an earlier version wrote as JSON text as plain text
    (what the original reads); a store failure only postpones it to the next start."""
    from datagems.errors import StoreError

    try:
        services.users.repair_email_index()
    except StoreError as exc:
        logger.warning("e-mail index not repaired this time: %s", exc)


async def serve(settings: Settings) -> None:
    from datagems.actors.engine import Engine
    from datagems.web.app import create_app

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    mock_runner = None
    gateway_url = settings.inference_base_url
    if gateway_url is None:
        from datagems.mock.server import start_mock

        mock_runner, gateway_url = await start_mock("127.0.0.1", 0, latency_ms=400, jitter_ms=300)
        logger.info("built-in mock inference gateway at %s", gateway_url)

    services = await asyncio.to_thread(Services.open, settings, gateway_url)
    generated = await asyncio.to_thread(bootstrap_admin, services)
    await asyncio.to_thread(repair_email_index, services)
    engine = await asyncio.to_thread(Engine(services).start)
    runner = web.AppRunner(create_app(services), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.app_host, settings.app_port)
    try:
        await site.start()
    except OSError as exc:
        await asyncio.to_thread(engine.stop, 0)
        await runner.cleanup()
        raise SystemExit(
            f"datagems replica: cannot listen on {settings.app_host}:"
            f"{settings.app_port}: {exc.strerror}"
        ) from None
    print(
        f"DataGems replica {settings.host_addr} serving at "
        f"http://{settings.app_host}:{settings.app_port}",
        flush=True,
    )
    if generated:
        print(
            f"First start: the admin account was created. Sign in as 'admin' with password: "
            f"{generated}  (shown only this once)",
            flush=True,
        )
    try:
        await stop.wait()
    finally:
        logger.info("stopping: web, then workers")
        await runner.cleanup()
        await asyncio.to_thread(engine.stop)
        if mock_runner is not None:
            await mock_runner.cleanup()
        services.close()
        logger.info("stopped")
