"""``datagems replica``: one process per peer id, serving the web app and running workers.

Start order: settings -> stores -> (built-in mock gateway) -> actors -> web. Stop order is
the reverse, on SIGTERM or SIGINT, and the process exits 0.
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
from datagems.web.app import create_app

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


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    gateway_url = settings.inference_base_url or ""
    services = Services.open(settings, gateway_url)
    runner = web.AppRunner(create_app(services), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.app_host, settings.app_port)
    await site.start()
    print(
        f"DataGems replica {settings.host_addr} at http://{settings.app_host}:{settings.app_port}",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        logger.info("stopping")
        await runner.cleanup()
        services.close()
