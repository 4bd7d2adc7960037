"""Near-duplicate records: MinHash signatures of a record's text, banded in an LSH index
(``datasketch``), pairs confirmed by their estimated Jaccard similarity.

A record's *text* is its string values that read as text: every string of the record
(nested ones included) except those of fields the schema gives an ``enum`` or a
``format`` of ``date``/``date-time``/``time``/``uuid`` (those are categories and stamps,
where equal values say nothing about copying). The text is lower-cased, its whitespace
collapsed, and cut into overlapping character shingles of ``SHINGLE`` characters; two
records are near-duplicates when the Jaccard similarity of their shingle sets, as
estimated from ``NUM_PERM`` MinHash permutations, is at least the threshold
(``DATAGEN_NEAR_DUPLICATE_THRESHOLD``, or the job's ``nearDuplicateThreshold``).

Records are added in index order (``NearDuplicates.add``): each is queried against the
ones before it, then inserted, so a pair is always (earlier, later) and the *later*
member is the one a resample calls again. Memory: the LSH index and one signature of
``NUM_PERM`` 32-bit values per record with text (about 1 KB each); the records' text is
never kept. At most ``MAX_PAIRS`` pairs are kept for showing; all are counted.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from array import array
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from datasketch import MinHash, MinHashLSH

NUM_PERM = 64
SHINGLE = 5
MAX_PAIRS = 500
MAX_TEXT_CHARS = 20_000  # of one record: longer text is cut (a signature needs no more)
STAMP_FORMATS = frozenset({"date", "date-time", "time", "uuid"})
_SPACE = re.compile(r"\s+")
# one fixed permutation set for every signature: built once (it is the costly part); the
# shingles are hashed with CRC-32 (stable across replicas, several times cheaper than the
# default SHA-1; the affine32 scheme mixes it with the MurmurHash3 finalizer first)
_TEMPLATE = MinHash(num_perm=NUM_PERM, seed=1, scheme="affine32", hashfunc=zlib.crc32)


def skipped_fields(schema: dict[str, Any] | None) -> frozenset[str]:
    """The top-level fields whose strings are categories or stamps, not text."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        return frozenset()
    skipped = set()
    for name, spec in props.items():
        if not isinstance(spec, dict):
            continue
        if "enum" in spec or "const" in spec or spec.get("format") in STAMP_FORMATS:
            skipped.add(str(name))
    return frozenset(skipped)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def record_text(data: Any, skipped: frozenset[str] = frozenset()) -> str:
    """The text of a record that near-duplicate detection compares (normalized)."""
    if isinstance(data, dict):
        parts = [s for key, value in data.items() if key not in skipped for s in _strings(value)]
    else:
        parts = list(_strings(data))
    text = _SPACE.sub(" ", " | ".join(parts)).strip().lower()
    return text[:MAX_TEXT_CHARS]


def shingles(text: str) -> set[bytes]:
    if not text:
        return set()
    encoded = text.encode()
    if len(text) <= SHINGLE:
        return {encoded}
    return {text[i : i + SHINGLE].encode() for i in range(len(text) - SHINGLE + 1)}


def signature(text: str) -> MinHash | None:
    """The MinHash of a text's shingles; None for a record without text."""
    grams = shingles(text)
    if not grams:
        return None
    minhash = MinHash(
        num_perm=NUM_PERM,
        seed=1,
        permutations=_TEMPLATE.permutations,
        scheme="affine32",
        hashfunc=zlib.crc32,
    )
    minhash.update_batch(list(grams))
    return minhash


def _key(index: int) -> str:
    return str(index)


class NearDuplicates:
    """Near-duplicate pairs among records added in index order (see the module)."""

    def __init__(self, threshold: float) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("the near-duplicate threshold must be in (0, 1]")
        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self.signatures: dict[int, array] = {}
        self.pairs: list[tuple[int, int, float]] = []
        self.pair_count = 0
        self.later: set[int] = set()  # the later member of every pair
        self.considered = 0

    def add(self, index: int, data: Any, skipped: frozenset[str] = frozenset()) -> None:
        minhash = signature(record_text(data, skipped))
        if minhash is None:
            return
        self.considered += 1
        values = minhash.hashvalues.astype(np.uint32)
        for candidate in self.lsh.query(minhash):
            earlier = int(candidate)
            other = self.signatures.get(earlier)
            if other is None or earlier == index:
                continue
            similarity = float(np.mean(np.frombuffer(other, dtype=np.uint32) == values))
            if similarity >= self.threshold:
                self._pair(earlier, index, similarity)
        if index not in self.signatures:
            self.lsh.insert(_key(index), minhash)
            self.signatures[index] = array("I", values.tobytes())

    def _pair(self, first: int, second: int, similarity: float) -> None:
        a, b = min(first, second), max(first, second)
        self.pair_count += 1
        self.later.add(b)
        if len(self.pairs) < MAX_PAIRS:
            self.pairs.append((a, b, round(similarity, 3)))

    def summary(self, ok_records: int) -> dict[str, Any]:
        later = len(self.later)
        return {
            "threshold": self.threshold,
            "numPerm": NUM_PERM,
            "shingle": SHINGLE,
            "records": self.considered,
            "pairCount": self.pair_count,
            "pairs": [{"a": a, "b": b, "similarity": s} for a, b, s in sorted(self.pairs)],
            "pairsShown": min(self.pair_count, MAX_PAIRS),
            "duplicates": later,  # records that are the later member of a pair
            "rate": round(later / ok_records, 4) if ok_records else 0.0,
            "later": sorted(self.later),
        }


def find(
    entries: Iterable[tuple[int, Any]], threshold: float, schema: dict[str, Any] | None = None
) -> NearDuplicates:
    """Near-duplicates among ``(index, data)`` pairs given in index order."""
    found = NearDuplicates(threshold)
    skipped = skipped_fields(schema)
    for index, data in entries:
        found.add(index, data, skipped)
    return found


def text_digest(data: Any, schema: dict[str, Any] | None = None) -> str:
    """A short digest of a record's compared text (tests and logs name records by it)."""
    text = record_text(data, skipped_fields(schema))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
