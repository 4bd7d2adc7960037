"""``datagems login``: sign in once; the other commands use the stored token, without
prompts, until it expires (7 days) or ``datagems logout`` ends it.

The password is asked on the terminal (never echoed), or read from stdin with
``--password-stdin`` (for scripts). The token goes to a file only this user can read
(``credentials``); it is never printed.

Exit codes: 0 signed in; 3 wrong credentials or usage error; 4 server unreachable.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from datagems.client import credentials
from datagems.client.api import EXIT_OK, EXIT_USAGE, ApiClient, ClientError
from datagems.client.session import (
    add_connection_arguments,
    ask,
    describe_exit_codes,
    interactive,
    usage_exit_code,
)

PROG = "datagems login"
CODES = (
    "exit codes:\n  0    signed in, token stored\n  3    wrong credentials or usage error\n"
    "  4    the server is unreachable or failing"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin (for scripts)",
    )
    add_connection_arguments(parser)
    usage_exit_code(parser)
    describe_exit_codes(parser, CODES)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not interactive():
        raise ClientError(
            "stdin is not a terminal: pass --password-stdin and the password on stdin",
            EXIT_USAGE,
        )
    return getpass.getpass("password: ")


def main(args: argparse.Namespace) -> int:
    try:
        with ApiClient(args.url) as client:
            username = args.username
            if not username:
                if args.password_stdin or not interactive():
                    raise ClientError("pass --username with --password-stdin", EXIT_USAGE)
                username = ask(f"username on {client.base_url}: ")
            if not username:
                raise ClientError("no username given", EXIT_USAGE)
            password = _password(args)
            if not password:
                raise ClientError("no password given", EXIT_USAGE)
            token = client.login(username, password)
            del password
            path = credentials.remember(
                client.base_url,
                token,
                str(client.signed_in.get("username") or username),
                client.signed_in.get("expiresAt"),
            )
            who = client.signed_in.get("username") or username
            expires = client.signed_in.get("expiresAt") or "?"
            print(f"signed in to {client.base_url} as {who} until {expires}; token in {path}")
            return EXIT_OK
    except ClientError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return exc.exit_code
    except (EOFError, KeyboardInterrupt):
        sys.stderr.write(f"\n{PROG}: aborted\n")
        return EXIT_USAGE
