"""Registration: one account per e-mail address, on a store without transactions.

CStore has no compare-and-set, so two replicas registering at the same instant can both
read "free" and both write; the last write wins. The scheme makes every such collision
one between two registrations of **the same address**, where it is harmless:

1. **The username is derived from the address**, not picked at random: the local part
   (``[^a-z0-9_]`` -> ``_``, as the original) plus ``_`` and 8 hex of an HMAC of the
   address keyed with the auth pepper (candidate ``k`` = 0, 1, ...). Two registrations of
   one address try the same names in the same order; two different addresses meet on a
   name only by a 32-bit keyed collision of the same local part.
2. **Claim, then verify**: the first candidate without a record is claimed by writing the
   account (password and address in its metadata), then read back. The stored password
   record is unique to each writer (random salt), so the read tells whose write won; the
   loser answers 409 ("already exists") and sends no mail. A name holding an account of
   another address (a collision, a deleted account, the original's account) is skipped.
3. The ``datagen:users`` entry and the e-mail index (plain text) are written next; the
   account is read once more before the mail goes out, so a writer overwritten after its
   first check still learns it lost.

Whatever the interleaving, the index only ever names, for an address, the account derived
for that address, and an account's metadata names its address: one account per address
(``tests/accounts/test_registration.py`` tries the interleavings with Hypothesis). Two
registrations of one address whose checks both pass before either write (a replication
delay on a real node) both answer 201 for the same username; the later write is the
password that works, and "Forgot your password?" mends the other.

A registration that stopped between steps (a crash, a store outage) leaves an account
without its index entry: the next registration of that address finds the account on its
derived name, completes the entries and answers 409.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from typing import Any

from datagems.accounts.users import Account, Accounts
from datagems.errors import Conflict
from datagems.models import UserIndexEntry, now_iso
from datagems.store.repos import UsersRepo, normalize_email

logger = logging.getLogger(__name__)
EMAIL_TAKEN = "an account with this e-mail address already exists"
SUFFIX_HEX = 8
BASE_CHARS = 40
CANDIDATES = 8


def username_base(email: str) -> str:
    """The local part as the original makes it: lower-cased, ``[^a-z0-9_]`` -> ``_``."""
    local = normalize_email(email).split("@", 1)[0]
    base = re.sub(r"[^a-z0-9_]", "_", local)[:BASE_CHARS].strip("_")
    return base or "user"


@dataclass(frozen=True)
class Registered:
    username: str
    email: str


class Registrar:
    """Creates accounts by e-mail address (blocking: run it in a thread)."""

    def __init__(
        self,
        accounts: Accounts,
        users: UsersRepo,
        key: str,
        *,
        suffix_hex: int = SUFFIX_HEX,
        candidates: int = CANDIDATES,
    ) -> None:
        self.accounts = accounts
        self.users = users
        self._key = key.encode("utf-8")
        self.suffix_hex = suffix_hex
        self.candidates = candidates

    def __repr__(self) -> str:  # never show the key
        return f"Registrar(suffix_hex={self.suffix_hex})"

    def candidate(self, email: str, k: int) -> str:
        """The ``k``-th username derived for ``email``; the same on every replica."""
        address = normalize_email(email)
        mac = hmac.new(self._key, f"datagems-username:{k}:{address}".encode(), hashlib.sha256)
        return f"{username_base(address)}_{mac.hexdigest()[: self.suffix_hex]}"

    def register(self, email: str, name: str, country: str, password: str) -> Registered:
        """A new account for ``email`` with ``password``; ``Conflict`` when the address has
        one (or another registration of it won this instant)."""
        return self.register_hashed(email, name, country, self.accounts.hash(password))

    def register_hashed(
        self, email: str, name: str, country: str, hashed: dict[str, Any]
    ) -> Registered:
        address = normalize_email(email)
        indexed = self.users.username_for_email(address)
        if indexed is not None and self.accounts.get(indexed) is not None:
            raise Conflict(EMAIL_TAKEN)  # deleted ones too: the address waits for a purge
        metadata = {"name": name, "email": address, "country": country}
        for k in range(self.candidates):
            username = self.candidate(address, k)
            found = self.accounts.get(username)
            if found is not None:
                if _address_of(found) == address and not found.deleted:
                    # another registration of this address, now or stopped half-way
                    self._index(username, found)
                    raise Conflict(EMAIL_TAKEN)
                continue  # another address's account, or a deleted one: never reused
            mine = self.accounts.write_new(username, hashed, metadata=metadata)
            if not self._won(username, mine, address):
                continue
            self._index(username, mine)
            if not self._won(username, mine, address):
                continue
            logger.info("registered %s", username)
            return Registered(username, address)
        raise Conflict("could not find a free username; try again")

    def _won(self, username: str, mine: Account, address: str) -> bool:
        """Is the stored account still the one this registration wrote? ``Conflict`` when
        another registration of the same address overwrote it; ``False`` (try the next
        name) when another address's did, whose entries are then written again from its
        account, in case this registration's came last."""
        back = self.accounts.get(username)
        if back is not None and back.credential == mine.credential:
            return True
        if back is not None and _address_of(back) == address:
            raise Conflict(EMAIL_TAKEN)
        if back is not None and _address_of(back) is not None:
            self._index(username, back)
        return False

    def _index(self, username: str, account: Account) -> None:
        """The ``datagen:users`` entry and the e-mail index, from the account's metadata."""
        metadata = account.metadata
        address = _address_of(account)
        if address is None:
            return
        name = metadata.get("name")
        country = metadata.get("country")
        self.users.put(
            UserIndexEntry(
                username=username,
                email=address,
                name=name if isinstance(name, str) else None,
                country=country if isinstance(country, str) and country else None,
                created_at=now_iso(),
            )
        )


def _address_of(account: Account) -> str | None:
    email = account.metadata.get("email")
    return normalize_email(email) if isinstance(email, str) else None
