"""What every client command shares: ``--url``/``--token``/``--username`` and the sign-in.

Credentials come from ``--token``, else ``DATAGEMS_TOKEN``, else the token ``datagems login``
stored for this server (``credentials``), else a prompt on the terminal (username, then
the password through ``getpass``: never echoed, printed or logged). The token is a session
token, as ``POST /api/auth/token`` returns it (the prompt signs in there); it is sent as
``Authorization: Bearer``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import NoReturn, TextIO

from datagems.client import credentials
from datagems.client.api import EXIT_USAGE, ApiClient, ClientError

TOKEN_ENV = "DATAGEMS_TOKEN"
URL_ENV = "DATAGEMS_URL"
DEFAULT_URL = "http://127.0.0.1:3000"


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV) or DEFAULT_URL,
        help=f"the replica to talk to (default ${URL_ENV}, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        default=None,
        help=f"session token (default ${TOKEN_ENV}, else the one `datagems login` stored; "
        "else you are asked to sign in)",
    )
    parser.add_argument(
        "--username", default=None, help="sign in as this user (the password is asked for)"
    )


def interactive(stream: TextIO | None = None) -> bool:
    stream = sys.stdin if stream is None else stream
    try:
        return bool(stream) and stream.isatty()
    except (AttributeError, ValueError):
        return False


def ask(prompt: str) -> str:
    """A line typed on the terminal; the prompt goes to stderr (stdout is for results)."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.strip()


def signed_in_client(args: argparse.Namespace) -> ApiClient:
    """A client of ``args.url`` with working credentials; ``ClientError`` (3) otherwise."""
    token = args.token or os.environ.get(TOKEN_ENV) or None
    client = ApiClient(args.url, token)
    try:
        if token:
            client.account = client.me()  # a bad token fails here, before anything is drafted
            return client
        remembered = credentials.stored(client.base_url)
        if remembered is not None and args.username not in (None, remembered.get("username")):
            remembered = None  # --username asks for another account than the stored one
        if remembered is not None:
            client.set_token(remembered["token"])
            try:
                client.account = client.me()
            except ClientError as exc:
                if exc.status != 401:
                    raise
                raise ClientError(
                    f"the sign-in stored for {client.base_url} has expired or was ended: "
                    f"run  datagems login --url {client.base_url}",
                    EXIT_USAGE,
                    401,
                ) from None
            return client
        if not interactive():
            raise ClientError(
                f"no credentials: run  datagems login --url {client.base_url}  once, or pass "
                f"--token / set {TOKEN_ENV} (stdin is not a terminal, so no sign-in prompt)",
                EXIT_USAGE,
            )
        username = args.username or ask(f"username on {client.base_url}: ")
        if not username:
            raise ClientError("no username given", EXIT_USAGE)
        password = getpass.getpass("password: ")
        if not password:
            raise ClientError("no password given", EXIT_USAGE)
        client.login(username, password)
        del password
        client.account = client.me()
        return client
    except EOFError:
        client.close()
        raise ClientError("sign-in aborted", EXIT_USAGE) from None
    except BaseException:
        client.close()
        raise


EXIT_CODES_HELP = """exit codes:
  0    done, every record ok
  1    the job finished with some records failed
  2    the job failed or was cancelled (or was not started)
  3    usage or authentication error (bad arguments, bad token)
  4    the server is unreachable or failing
  130  interrupted (Ctrl-C)"""


def describe_exit_codes(parser: argparse.ArgumentParser, codes: str = EXIT_CODES_HELP) -> None:
    """Show the exit codes (and the credential variables) under ``--help``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        f"{codes}\n\nenvironment:\n"
        f"  {TOKEN_ENV}  session token (instead of --token)\n"
        f"  {URL_ENV}    the replica (instead of --url)"
    )


def usage_exit_code(parser: argparse.ArgumentParser, code: int = EXIT_USAGE) -> None:
    """Make the command's own argument errors exit with ``code`` (argparse's default is 2,
    which here means "the job failed")."""

    def error(message: str) -> NoReturn:
        parser.print_usage(sys.stderr)
        parser.exit(code, f"{parser.prog}: error: {message}\n")

    parser.error = error  # type: ignore[method-assign]
