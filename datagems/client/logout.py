"""``datagems logout``: end the stored session on the server (every replica refuses it from
then on) and forget it. Exit code 0 also when nothing was stored or the server is away
(the token is forgotten either way)."""

from __future__ import annotations

import argparse
import os
import sys

from datagems.client import credentials
from datagems.client.api import EXIT_OK, ApiClient, ClientError, normalize_url
from datagems.client.session import DEFAULT_URL, URL_ENV

PROG = "datagems logout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV) or DEFAULT_URL,
        help=f"the replica (default ${URL_ENV}, else {DEFAULT_URL})",
    )


def main(args: argparse.Namespace) -> int:
    url = normalize_url(args.url)
    entry = credentials.stored(url)
    if entry is None:
        print(f"not signed in to {url}")
        return EXIT_OK
    try:
        with ApiClient(url, entry["token"]) as client:
            client.logout()
    except ClientError as exc:
        sys.stderr.write(f"{PROG}: the server did not end the session ({exc})\n")
    credentials.forget(url)
    print(f"signed out of {url}")
    return EXIT_OK
