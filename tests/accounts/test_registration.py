"""Registration: one account per e-mail address whatever the interleaving (Hypothesis).

The property test runs several registrations in threads over one real embedded CStore and
lets Hypothesis choose, before every single store call, which registration goes next: the
interleavings two replicas (or two requests) can produce on a store without transactions.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datagems.accounts.passwords import hash_password
from datagems.accounts.registration import Registrar, username_base
from datagems.accounts.users import Accounts
from datagems.errors import Conflict
from datagems.models import UserIndexEntry
from datagems.store import keys
from datagems.store.base import CStore
from datagems.store.embedded import SqliteCStore
from datagems.store.repos import UsersRepo

HKEY = "datagen:auth"
PEPPER = "registration-test-pepper"
WORKERS = 4
# real argon2id records, one per concurrent registration (hashing is the slow part)
HASHED = [hash_password(f"password-{n}", PEPPER) for n in range(WORKERS)]


def make(cstore: CStore, **options: Any) -> tuple[Accounts, UsersRepo, Registrar]:
    accounts = Accounts(cstore, HKEY, PEPPER)
    users = UsersRepo(cstore)
    return accounts, users, Registrar(accounts, users, PEPPER, **options)


# -- the scheme, one step at a time -----------------------------------------------------
def test_the_username_is_derived_from_the_address_like_the_originals(cstore: SqliteCStore) -> None:
    _, _, registrar = make(cstore)
    first = registrar.candidate(" Tess.Capture@Example.com ", 0)
    assert first == registrar.candidate("tess.capture@example.com", 0)
    assert first.startswith("tess_capture_") and len(first) == len("tess_capture_") + 8
    assert registrar.candidate("tess.capture@example.com", 1) != first
    assert registrar.candidate("tess.capture@other.example", 0) != first
    assert username_base("++@x.org") == "user"
    keyed = make(cstore)[2].candidate("a@b.co", 0)
    assert Registrar(*make(cstore)[:2], "another-key").candidate("a@b.co", 0) != keyed


def test_a_registration_writes_the_account_the_users_entry_and_a_plain_text_index(
    cstore: SqliteCStore,
) -> None:
    accounts, users, registrar = make(cstore)
    done = registrar.register_hashed("Ada@Example.org", "Ada", "UK", HASHED[0])
    account = accounts.get(done.username)
    assert account is not None and account.metadata["email"] == "ada@example.org"
    assert cstore.hget_raw(keys.EMAIL_INDEX, "ada@example.org") == done.username
    entry = users.get(done.username)
    assert entry is not None and entry.email == "ada@example.org" and entry.country == "UK"
    with pytest.raises(Conflict):
        registrar.register_hashed("ada@example.org", "Ada", "", HASHED[1])


def test_a_name_taken_by_another_address_is_skipped(cstore: SqliteCStore) -> None:
    accounts, _, registrar = make(cstore)
    taken = registrar.candidate("bob@example.org", 0)
    accounts.write_new(taken, HASHED[0], metadata={"email": "someone@else.org"})
    done = registrar.register_hashed("bob@example.org", "Bob", "", HASHED[1])
    assert done.username == registrar.candidate("bob@example.org", 1)
    assert accounts.get(taken).metadata["email"] == "someone@else.org"  # type: ignore[union-attr]


def test_a_registration_stopped_half_way_is_completed_by_the_next_try(
    cstore: SqliteCStore,
) -> None:
    accounts, users, registrar = make(cstore)
    name = registrar.candidate("cy@example.org", 0)
    accounts.write_new(name, HASHED[0], metadata={"email": "cy@example.org", "name": "Cy"})
    with pytest.raises(Conflict):
        registrar.register_hashed("cy@example.org", "Cy", "", HASHED[1])
    assert users.username_for_email("cy@example.org") == name
    assert accounts.get(name).credential == accounts.get(name).credential  # type: ignore[union-attr]


def test_a_deleted_account_keeps_its_address_and_its_name(cstore: SqliteCStore) -> None:
    accounts, _, registrar = make(cstore)
    first = registrar.register_hashed("dee@example.org", "Dee", "", HASHED[0])
    accounts.soft_delete(first.username, "admin")
    with pytest.raises(Conflict):
        registrar.register_hashed("dee@example.org", "Dee", "", HASHED[1])
    accounts.soft_delete(first.username, "admin", purge=True)
    UsersRepo(cstore).delete(first.username)
    again = registrar.register_hashed("dee@example.org", "Dee", "", HASHED[1])
    assert again.username != first.username


def test_an_index_entry_naming_no_account_does_not_burn_the_address(cstore: SqliteCStore) -> None:
    _, users, registrar = make(cstore)
    users.index_email("eli@example.org", "ghost_account")
    done = registrar.register_hashed("eli@example.org", "Eli", "", HASHED[0])
    assert users.username_for_email("eli@example.org") == done.username


# -- every interleaving -----------------------------------------------------------------
class Scheduler:
    """Runs workers in threads, letting exactly one store call happen at a time, the one
    ``choose`` picks among the workers waiting to make one."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.parked: set[int] = set()
        self.finished: set[int] = set()
        self.go: int | None = None
        self.free = False  # the schedule was abandoned: every call goes at once
        self.ids: dict[int, int] = {}  # thread ident -> worker number

    def gate(self) -> None:
        me = self.ids.get(threading.get_ident())
        if me is None:  # not a worker (set-up): no turn to wait for
            return
        with self.cond:
            self.parked.add(me)
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.free or self.go == me)
            if self.go == me:
                self.go = None
            self.parked.discard(me)
            self.cond.notify_all()

    def run(self, workers: list[Callable[[], None]], choose: Callable[[list[int]], int]) -> None:
        threads = []
        for number, work in enumerate(workers):

            def body(number: int = number, work: Callable[[], None] = work) -> None:
                self.ids[threading.get_ident()] = number
                try:
                    self.gate()  # everyone starts parked: the first step is chosen too
                    work()
                finally:
                    with self.cond:
                        self.finished.add(number)
                        self.cond.notify_all()

            threads.append(threading.Thread(target=body, daemon=True))
        for thread in threads:
            thread.start()
        everyone = set(range(len(workers)))
        try:
            while True:
                with self.cond:
                    settled = self.cond.wait_for(
                        lambda: self.go is None and self.parked | self.finished == everyone,
                        timeout=30,
                    )
                    assert settled, "a worker neither parked nor finished"
                    waiting = sorted(self.parked)
                    if not waiting:
                        break
                    self.go = waiting[choose(waiting)]
                    self.cond.notify_all()
        finally:
            with self.cond:
                self.free = True
                self.cond.notify_all()
            for thread in threads:
                thread.join(30)


class ScheduledCStore(CStore):
    """A real store whose every call first waits for its turn."""

    def __init__(self, inner: CStore, scheduler: Scheduler) -> None:
        self.inner = inner
        self.scheduler = scheduler

    def get_raw(self, key: str) -> Any:
        self.scheduler.gate()
        return self.inner.get_raw(key)

    def set_raw(self, key: str, value: Any) -> None:
        self.scheduler.gate()
        self.inner.set_raw(key, value)

    def hget_raw(self, hkey: str, field: str) -> Any:
        self.scheduler.gate()
        return self.inner.hget_raw(hkey, field)

    def hset_raw(self, hkey: str, field: str, value: Any) -> None:
        self.scheduler.gate()
        self.inner.hset_raw(hkey, field, value)

    def hgetall_raw(self, hkey: str) -> dict[str, Any]:
        self.scheduler.gate()
        return self.inner.hgetall_raw(hkey)


ADDRESSES = [
    "sam@a.example",
    "sam@b.example",  # the same local part: the same base, another suffix
    "SAM@A.example ",  # the first one again, spelled otherwise
    "kim@a.example",
]


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    registrations = draw(
        st.lists(st.sampled_from(ADDRESSES), min_size=2, max_size=WORKERS), label="addresses"
    )
    return {
        "registrations": registrations,
        # what the store holds before: an account another address left on a name this
        # address derives first (a collision, the original's account), a registration
        # of an address stopped before its index entry, an account already complete
        "collision_on": draw(st.sampled_from([None, *ADDRESSES[:2], ADDRESSES[3]])),
        "half_done": draw(st.sampled_from([None, "kim@a.example"])),
        "existing": draw(st.sampled_from([None, "sam@b.example"])),
    }


def seed(cstore: CStore, scenario: dict[str, Any]) -> None:
    accounts, _, registrar = make(cstore)
    if scenario["collision_on"]:
        name = registrar.candidate(scenario["collision_on"], 0)
        other = "somebody@else.example"
        accounts.write_new(name, HASHED[0], metadata={"email": other})
        UsersRepo(cstore).put(UserIndexEntry(username=name, email=other))
    if scenario["half_done"]:
        address = scenario["half_done"]
        name = registrar.candidate(address, 0)
        if accounts.get(name) is None:
            accounts.write_new(name, HASHED[1], metadata={"email": address, "name": "Half"})
    if scenario["existing"]:
        registrar.register_hashed(scenario["existing"], "Old", "", HASHED[2])


def check_invariants(
    cstore: CStore, before: dict[str, Any], outcomes: dict[int, Any], registrations: list[str]
) -> None:
    # what the store held before is still there, untouched (completed, at most)
    after = cstore.hgetall_raw(HKEY)
    for username, record in before.items():
        assert after.get(username) == record, f"{username} was overwritten"
    accounts = Accounts(cstore, HKEY, PEPPER)
    users = UsersRepo(cstore)
    normal = [r.strip().lower() for r in registrations]
    live = [a for a in accounts.all() if not a.deleted]
    by_address: dict[str, list[str]] = {}
    for account in live:
        address = account.metadata.get("email")
        by_address.setdefault(address, []).append(account.username)
    # one account per address
    for address, names in by_address.items():
        assert len(names) == 1, f"{address} has accounts {names}"
    # every address registered has exactly that account, and the index names it
    for address in set(normal):
        assert len(by_address.get(address, [])) == 1, f"{address}: {by_address}"
        indexed = users.username_for_email(address)
        assert indexed == by_address[address][0], f"{address} indexed to {indexed}"
        assert cstore.hget_raw(keys.EMAIL_INDEX, address) == indexed  # plain text
    # every index entry names an account of that very address (never a merge)
    for address, stored in cstore.hgetall_raw(keys.EMAIL_INDEX).items():
        account = accounts.get(stored)
        assert account is not None and account.metadata.get("email") == address
    # the users hash agrees with the accounts
    for username, entry in users.all().items():
        account = accounts.get(username)
        assert account is not None and entry.email == account.metadata.get("email")
    # every success names the one account of its address; all successes of one address
    # name the same one
    for worker, outcome in outcomes.items():
        if isinstance(outcome, Exception):
            assert isinstance(outcome, Conflict), repr(outcome)
            continue
        assert outcome.username == by_address[normal[worker]][0]


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios(), data=st.data())
def test_one_account_per_address_under_every_interleaving(
    scenario: dict[str, Any], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteCStore(Path(folder) / "cstore.sqlite")
        try:
            seed(store, scenario)
            before = store.hgetall_raw(HKEY)
            scheduler = Scheduler()
            scheduled = ScheduledCStore(store, scheduler)
            _, _, registrar = make(scheduled)
            registrations = scenario["registrations"]
            outcomes: dict[int, Any] = {}

            def worker(number: int, address: str) -> Callable[[], None]:
                def work() -> None:
                    try:
                        outcomes[number] = registrar.register_hashed(
                            address, "Name", "", HASHED[number]
                        )
                    except Exception as exc:  # checked below: only Conflict is allowed
                        outcomes[number] = exc

                return work

            scheduler.run(
                [worker(n, a) for n, a in enumerate(registrations)],
                lambda waiting: data.draw(
                    st.integers(0, len(waiting) - 1), label=f"next of {waiting}"
                ),
            )
            check_invariants(store, before, outcomes, registrations)
        finally:
            store.close()
