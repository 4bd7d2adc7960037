"""Accounts on a fleet of three replica processes sharing one devnode (issue 13 items 6, 8,
13 and the store-address leak of 14): what one replica does, every other one honours."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from datagems.accounts.users import Accounts
from datagems.bench.procs import free_port, wait_until
from datagems.store import keys
from datagems.store.repos import UsersRepo
from tests.fleet import ADMIN_PASSWORD, AUTH_PEPPER, TEST_SECRETS, Fleet

pytestmark = pytest.mark.fleet
PEERS = ["a", "b", "c"]
PER_ACCOUNT = 5
PER_ADDRESS = 40
HKEY = "datagen:auth"
LEGACY = "pat.legacy@example.org"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def credentials(self, address: str) -> list[tuple[str, str]]:
        found = []
        for message in list(self.messages):
            if address in message["To"].lower():
                body = message.get_payload(decode=True).decode()
                user = re.search(r"Username:\s*(\S+)", body)
                password = re.search(r"Password:\s*(\S+)", body)
                if user and password:
                    found.append((user.group(1), password.group(1)))
        return found


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    box = Inbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, inbox: tuple[Inbox, int]) -> Iterator[Fleet]:
    env = {
        "DATAGEN_SMTP_HOST": "127.0.0.1",
        "DATAGEN_SMTP_PORT": inbox[1],
        "DATAGEN_SMTP_FROM": "noreply@datagems.test",
        "DATAGEN_PUBLIC_URL": "https://gems.example.org",
        "DATAGEN_REGISTER_MAX_PER_IP": 1000,
        "DATAGEN_LOGIN_MAX_FAILURES_PER_ACCOUNT": PER_ACCOUNT,
        "DATAGEN_LOGIN_MAX_FAILURES_PER_ADDRESS": PER_ADDRESS,
        "DATAGEN_STORE_TIMEOUT_SECONDS": 2,
    }
    with Fleet(Path(tmp_path_factory.mktemp("accounts-fleet")), PEERS, replica_env=env) as running:
        # what an earlier version left: an index entry written as JSON text
        Accounts(running.cstore, HKEY, AUTH_PEPPER).create(
            "pat_legacy", "pat-Legacy-passw0rd", metadata={"email": LEGACY}
        )
        running.cstore.hset(keys.EMAIL_INDEX, LEGACY, "pat_legacy")  # JSON text: '"pat_legacy"'
        running.start_replicas()
        yield running


def url(fleet: Fleet, peer: str) -> str:
    return fleet.replicas[peer].url


def login(fleet: Fleet, peer: str, username: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{url(fleet, peer)}/api/auth/login",
        json={"username": username, "password": password},
        timeout=30,
    )


def test_registrations_at_the_same_instant_on_three_replicas_make_one_account_per_address(
    fleet: Fleet, inbox: tuple[Inbox, int]
) -> None:
    """Item 6: six addresses registered at the same instant all became one username."""
    box, _ = inbox
    addresses = [f"sam@site{n}.example" for n in range(6)]
    requests = [*addresses, addresses[0], addresses[0], addresses[1]]

    def register(item: tuple[int, str]) -> httpx.Response:
        number, address = item
        return httpx.post(
            f"{url(fleet, PEERS[number % 3])}/api/auth/register",
            json={"name": "Sam", "email": address},
            timeout=60,
        )

    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(register, enumerate(requests)))
    assert {a.status_code for a in answers} <= {201, 409}, [a.text for a in answers]
    created: dict[str, set[str]] = {}
    for answer in answers:
        if answer.status_code == 201:
            created.setdefault(answer.json()["email"], set()).add(answer.json()["username"])
    assert sorted(created) == sorted(addresses)
    assert all(len(names) == 1 for names in created.values()), created  # one name each
    usernames = {next(iter(names)) for names in created.values()}
    assert len(usernames) == 6

    accounts = Accounts(fleet.cstore, HKEY, AUTH_PEPPER)
    users = UsersRepo(fleet.cstore)
    live = [a for a in accounts.all() if a.metadata.get("email") in addresses]
    assert sorted(a.metadata["email"] for a in live) == sorted(addresses)  # one per address
    for address, names in created.items():
        (username,) = names
        assert fleet.cstore.hget_raw(keys.EMAIL_INDEX, address) == username  # plain text
        assert users.get(username).email == address  # type: ignore[union-attr]
        mailed = wait_until(lambda a=address: box.credentials(a), what=f"mail to {address}")
        assert {name for name, _ in mailed} == {username}
        # the last write of the account is the password that works: one of those mailed
        works = [p for _, p in mailed if login(fleet, "c", username, p).status_code == 200]
        assert works, f"no mailed password of {address} signs in"


def test_an_admin_and_visitors_making_one_address_on_three_replicas_make_one_account(
    fleet: Fleet,
) -> None:
    """Issue 16: an account an admin makes goes through the same claim-then-verify as a
    sign-up, so the two racing on several replicas still leave one account per address."""
    token = httpx.post(
        f"{url(fleet, 'a')}/api/auth/token",
        json={"username": "admin", "password": ADMIN_PASSWORD},
        timeout=30,
    ).json()["token"]
    addresses = [f"kim@race{n}.example" for n in range(3)]
    requests = [(kind, address) for address in addresses for kind in ("admin", "visitor") * 2]

    def make(item: tuple[int, tuple[str, str]]) -> httpx.Response:
        number, (kind, address) = item
        base = url(fleet, PEERS[number % 3])
        if kind == "admin":
            return httpx.post(
                f"{base}/api/admin/accounts",
                json={"name": "Kim", "email": address},
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
        return httpx.post(
            f"{base}/api/auth/register", json={"name": "Kim", "email": address}, timeout=60
        )

    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(make, enumerate(requests)))
    assert {a.status_code for a in answers} <= {201, 409}, [a.text for a in answers]
    accounts = Accounts(fleet.cstore, HKEY, AUTH_PEPPER)
    for address in addresses:
        named = {a.json()["username"] for a in answers if a.status_code == 201 and
                 a.json()["email"] == address}  # fmt: skip
        live = [a for a in accounts.all() if a.metadata.get("email") == address]
        assert len(live) == 1 and named == {live[0].username}, (address, named, live)


def test_an_index_entry_written_as_json_text_is_repaired_at_start_and_still_found(
    fleet: Fleet,
) -> None:
    """Issue 12: the original reads the index as plain text and missed such entries."""
    assert fleet.cstore.hget_raw(keys.EMAIL_INDEX, LEGACY) == "pat_legacy"
    again = httpx.post(
        f"{url(fleet, 'b')}/api/auth/register", json={"name": "Pat", "email": LEGACY}, timeout=30
    )
    assert again.status_code == 409  # the same address: no second account


def test_sign_out_on_one_replica_ends_the_session_on_every_replica(fleet: Fleet) -> None:
    """Item 8: logging out did not end the session."""
    signed = login(fleet, "a", "admin", ADMIN_PASSWORD)
    assert signed.status_code == 200
    cookie = signed.cookies["datagen_session"]
    token = httpx.post(
        f"{url(fleet, 'b')}/api/auth/token",
        json={"username": "admin", "password": ADMIN_PASSWORD},
        timeout=30,
    ).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    for peer in PEERS:
        me = httpx.get(f"{url(fleet, peer)}/api/auth/me", cookies={"datagen_session": cookie})
        assert me.status_code == 200
        assert httpx.get(f"{url(fleet, peer)}/api/auth/me", headers=bearer).status_code == 200

    out = httpx.post(
        f"{url(fleet, 'a')}/api/auth/logout",
        cookies={"datagen_session": cookie},
        headers={"Origin": url(fleet, "a")},
    )
    assert out.status_code == 200
    for peer in PEERS:
        wait_until(
            lambda p=peer: (
                httpx.get(
                    f"{url(fleet, p)}/api/auth/me", cookies={"datagen_session": cookie}
                ).status_code
                == 401
            ),
            timeout=10,
            what=f"the signed-out cookie refused on {peer}",
        )
        # the other session (the API token) is a session of its own: still valid
        assert httpx.get(f"{url(fleet, peer)}/api/auth/me", headers=bearer).status_code == 200
    assert httpx.post(f"{url(fleet, 'c')}/api/auth/logout", headers=bearer).status_code == 200
    for peer in PEERS:
        wait_until(
            lambda p=peer: (
                httpx.get(f"{url(fleet, p)}/api/auth/me", headers=bearer).status_code == 401
            ),
            timeout=10,
            what=f"the signed-out token refused on {peer}",
        )


def test_a_url_path_cannot_forge_or_hide_a_log_line(fleet: Fleet) -> None:
    """Item 13: ``%0a`` in an unauthenticated URL path wrote a forged log line, ``%00`` a
    raw NUL."""
    forged = "2031-01-01 00:00:00,000 WARNING [a] datagems.web.api_auth: admin signed in"
    path = "/api/tasks/x%0d%0a" + forged.replace(" ", "%20") + "%00%1b[2J"
    answer = httpx.get(f"{url(fleet, 'a')}{path}")
    assert answer.status_code == 401
    wait_until(lambda: b"\\x0a2031-01-01" in fleet.replicas["a"].process.log_path.read_bytes())
    log = fleet.replicas["a"].process.log_path.read_bytes()
    assert b"\x00" not in log and b"\x1b" not in log
    assert not [line for line in log.splitlines() if line.startswith(b"2031-01-01")]


def test_a_store_outage_answers_503_without_naming_the_store(fleet: Fleet) -> None:
    """Item 14: error answers named the internal store URL, even to an unauthenticated
    sign-in during an outage."""
    faults = f"{fleet.cstore_url}/__devnode/faults"
    httpx.post(faults, json={"status": 500}, timeout=5).raise_for_status()
    try:
        answer = login(fleet, "b", "admin", ADMIN_PASSWORD)
    finally:
        httpx.post(faults, json={}, timeout=5).raise_for_status()
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    text = answer.text
    assert "127.0.0.1" not in text and str(fleet.cstore_port) not in text
    assert "http" not in answer.json()["error"]
    assert login(fleet, "b", "admin", ADMIN_PASSWORD).status_code == 200


def test_guesses_spread_over_three_replicas_are_refused_with_429(fleet: Fleet) -> None:
    """Item 8: 240 guesses in 2 minutes over three replicas, none refused; the replica's
    delay slowed every user behind the same address."""
    accounts = Accounts(fleet.cstore, HKEY, AUTH_PEPPER)
    accounts.create("victim", "the-Victims-passw0rd")
    accounts.create("neighbour", "the-Neighbours-passw0rd")
    statuses = [
        login(fleet, PEERS[n % 3], "victim", f"guess-{n}").status_code for n in range(3 * 6)
    ]
    assert statuses[:PER_ACCOUNT] == [401] * PER_ACCOUNT
    assert set(statuses[PER_ACCOUNT:]) == {429}
    refused = login(fleet, "b", "victim", "the-Victims-passw0rd")
    assert refused.status_code == 429  # the right password too: no oracle for a guesser
    assert int(refused.headers["Retry-After"]) >= 1
    assert "username" in refused.json()["error"]
    # someone else behind the same address is answered at once, and signs in
    assert login(fleet, "c", "neighbour", "the-Neighbours-passw0rd").status_code == 200

    # spraying many usernames from one address: refused for every username past the limit
    sprayed = [
        login(fleet, PEERS[n % 3], f"user-{n}", "password1").status_code for n in range(PER_ADDRESS)
    ]
    # the victim's failures count too (and any stale mailed password tried above)
    first_refused = sprayed.index(429)
    assert PER_ADDRESS - PER_ACCOUNT - 3 <= first_refused <= PER_ADDRESS - PER_ACCOUNT
    assert set(sprayed[:first_refused]) == {401} and set(sprayed[first_refused:]) == {429}
    blocked = login(fleet, "a", "neighbour", "the-Neighbours-passw0rd")
    assert blocked.status_code == 429 and "address" in blocked.json()["error"]


def test_no_secret_reaches_a_replica_log(fleet: Fleet, inbox: tuple[Inbox, int]) -> None:
    secrets = list(TEST_SECRETS)
    for message in inbox[0].messages:
        body = message.get_payload(decode=True).decode()
        secrets += re.findall(r"Password:\s*(\S+)", body)
    for replica in fleet.replicas.values():
        text = replica.process.output()
        for secret in secrets:
            assert secret not in text, f"a secret in the log of {replica.peer}"
