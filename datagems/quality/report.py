"""The quality report of a job: what its records look like, field by field, and how
they came to be (``GET /api/tasks/{id}/report``, the charts of the job page).

Built in one pass over the job's records merged from every slice of every replica
(``export.merged_entries``: one record per index, the export's rule), so it describes
exactly the dataset the export gives. Per **field** of the ok records (the schema's
fields first, then any other key seen):

- ``present``, ``missing`` (no key, or ``null``) and ``empty`` (``""`` or only
  whitespace, ``[]``, ``{}``) with their rates over the ok records, and ``distinct``
  (distinct present values, compared as canonical JSON; exact up to ``DISTINCT_EXACT``
  values, a HyperLogLog estimate past that, flagged ``distinctEstimated``);
- numbers: ``histogram`` and ``min``/``max``/``mean``; dates (``YYYY-MM-DD...`` strings
  of a field whose schema says ``format: date``/``date-time``): ``histogram`` by day;
- strings, booleans, enums: ``top`` values (``TOP_VALUES`` most frequent, share of the
  present values); strings also the ``length`` histogram (characters).

The **histogram rule** (the same for numbers, days and lengths): no value, no bins; one
value repeated, one bin ``[v, v]``; whole numbers spanning at most ``INTEGER_BINS``
values, one bin per value ``[k, k + 1)``; otherwise ``BINS`` bins of equal width over
``[min, max]``, a value in bin ``min(int((v - min) / width), BINS - 1)``.

Per declared **variable** (the job details' ``variables``; each record's drawn values
are in its result line under ``vars``): the requested distribution against the observed
one over the ok records. Then the **near-duplicates** (``datagems.quality.neardup``),
the **failures** by reason (of the records that ended failed), and **usage**: tokens
from the peer states, and cost when the job's inference profile has prices.

Memory: one 8-byte number per record per numeric/date/string field (the histograms need
the range first), the distinct sets up to their cap, the top-value counters (at most
``TOP_KEYS`` keys per field, each cut to ``TOP_KEY_CHARS``), and the near-duplicate
index; the records themselves are never held.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from array import array
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson
from datasketch import HyperLogLogPlusPlus

from datagems.quality.neardup import NearDuplicates, skipped_fields

BINS = 10
INTEGER_BINS = 20
TOP_VALUES = 10
TOP_KEYS = 5_000  # distinct keys counted per field for the top values
TOP_KEY_CHARS = 200
DISTINCT_EXACT = 100_000
DATE_FORMATS = frozenset({"date", "date-time"})


# --------------------------------------------------------------------------- helpers


def histogram(values: Iterable[float]) -> list[dict[str, float | int]]:
    """Bins of ``values`` by the module's histogram rule."""
    data = list(values)
    if not data:
        return []
    low, high = min(data), max(data)
    if low == high:
        return [{"lo": low, "hi": high, "count": len(data)}]
    if all(float(v).is_integer() for v in data) and high - low + 1 <= INTEGER_BINS:
        counts = Counter(int(v) for v in data)
        first = int(low)
        return [
            {"lo": k, "hi": k + 1, "count": counts.get(k, 0)} for k in range(first, int(high) + 1)
        ]
    width = (high - low) / BINS
    counts = [0] * BINS
    for value in data:
        counts[min(int((value - low) / width), BINS - 1)] += 1
    return [
        {"lo": low + width * k, "hi": low + width * (k + 1), "count": counts[k]}
        for k in range(BINS)
    ]


def canonical(value: Any) -> bytes:
    """The JSON a value is compared by (keys sorted)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def is_empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, (list, dict)) and not value


def day_of(value: Any) -> int | None:
    """The proleptic ordinal of an ISO date or date-time string's day; None otherwise."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10]).toordinal()
    except ValueError:
        return None


def _iso_day(ordinal: float) -> str:
    return dt.date.fromordinal(math.floor(ordinal)).isoformat()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _top(counter: Counter[Any], total: int, limit: int = TOP_VALUES) -> list[dict[str, Any]]:
    ranked = sorted(counter.items(), key=lambda item: (-item[1], str(item[0])))[:limit]
    return [
        {"value": value, "count": count, "share": round(count / total, 4) if total else 0.0}
        for value, count in ranked
    ]


def _top_key(value: Any) -> Any:
    if isinstance(value, str):
        return value[:TOP_KEY_CHARS]
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return canonical(value).decode()[:TOP_KEY_CHARS]


class _Distinct:
    """Distinct values: exact (a set of 64-bit digests) up to a cap, then HyperLogLog."""

    def __init__(self) -> None:
        self.exact: set[int] | None = set()
        self.sketch: HyperLogLogPlusPlus | None = None

    def add(self, value: Any) -> None:
        digest = hashlib.blake2b(canonical(value), digest_size=8).digest()
        if self.exact is not None:
            self.exact.add(int.from_bytes(digest, "big"))
            if len(self.exact) > DISTINCT_EXACT:
                self.sketch = HyperLogLogPlusPlus(p=14)
                for seen in self.exact:
                    self.sketch.update(seen.to_bytes(8, "big"))
                self.exact = None
        else:
            assert self.sketch is not None
            self.sketch.update(digest)

    def count(self) -> tuple[int, bool]:
        if self.exact is not None:
            return len(self.exact), False
        assert self.sketch is not None
        return round(self.sketch.count()), True


# --------------------------------------------------------------------------- fields


def field_kind(spec: Any) -> str:
    """number | date | category | string | other, from a field's schema."""
    if not isinstance(spec, dict):
        return "other"
    kinds = spec.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    kinds = [k for k in kinds if k != "null"]
    if "enum" in spec or "const" in spec or kinds == ["boolean"]:
        return "category"
    if kinds and all(k in ("integer", "number") for k in kinds):
        return "number"
    if kinds == ["string"]:
        return "date" if spec.get("format") in DATE_FORMATS else "string"
    return "other"


def _kind_of_value(value: Any) -> str:
    if isinstance(value, bool):
        return "category"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


class FieldStats:
    def __init__(self, name: str, kind: str, declared: bool) -> None:
        self.name = name
        self.kind = kind
        self.declared = declared
        self.present = 0
        self.empty = 0
        self.distinct = _Distinct()
        self.numbers = array("d")
        self.lengths = array("d")
        self.top: Counter[Any] = Counter()
        self.top_full = False

    def add(self, value: Any) -> None:
        self.present += 1
        if is_empty(value):
            self.empty += 1
        self.distinct.add(value)
        if self.kind == "number":
            if _is_number(value):
                self.numbers.append(float(value))
            return
        if self.kind == "date":
            day = day_of(value)
            if day is not None:
                self.numbers.append(float(day))
        if isinstance(value, (str, list)):
            self.lengths.append(float(len(value)))
        if self.kind in ("category", "string"):
            key = _top_key(value)
            if key in self.top or len(self.top) < TOP_KEYS:
                self.top[key] += 1
            else:
                self.top_full = True

    def summary(self, ok: int) -> dict[str, Any]:
        distinct, estimated = self.distinct.count()
        missing = ok - self.present
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "inSchema": self.declared,
            "present": self.present,
            "missing": missing,
            "empty": self.empty,
            "missingRate": round(missing / ok, 4) if ok else 0.0,
            "emptyRate": round(self.empty / ok, 4) if ok else 0.0,
            "distinct": distinct,
        }
        if estimated:
            out["distinctEstimated"] = True
        if self.kind == "number" and self.numbers:
            out["min"], out["max"] = min(self.numbers), max(self.numbers)
            out["mean"] = round(math.fsum(self.numbers) / len(self.numbers), 6)
            out["histogram"] = histogram(self.numbers)
        if self.kind == "date" and self.numbers:
            out["min"], out["max"] = _iso_day(min(self.numbers)), _iso_day(max(self.numbers))
            out["histogram"] = [
                {**b, "from": _iso_day(b["lo"]), "to": _iso_day(b["hi"])}
                for b in histogram(self.numbers)
            ]
        if self.top:
            out["top"] = _top(self.top, self.present)
            if self.top_full:
                out["topApproximate"] = True
        if self.lengths and self.kind != "number":
            out["length"] = {
                "min": min(self.lengths),
                "max": max(self.lengths),
                "mean": round(math.fsum(self.lengths) / len(self.lengths), 6),
                "histogram": histogram(self.lengths),
            }
            out["text"] = self.kind == "string" and out["length"]["mean"] > 32
        return out


# --------------------------------------------------------------------------- variables


def _normal_cdf(x: float, mean: float, stddev: float) -> float:
    return 0.5 * (1.0 + math.erf((x - mean) / (stddev * math.sqrt(2.0))))


def _bin_edges(low: float, high: float, integer: bool) -> list[tuple[float, float]]:
    if integer and high - low + 1 <= INTEGER_BINS:
        return [(k, k + 1) for k in range(math.ceil(low), math.floor(high) + 1)]
    if low == high:
        return [(low, high)]
    width = (high - low) / BINS
    return [(low + width * k, low + width * (k + 1)) for k in range(BINS)]


def _bin_of(value: float, edges: list[tuple[float, float]]) -> int | None:
    if not edges:
        return None
    if len(edges) == 1:
        return 0
    low, high = edges[0][0], edges[-1][1]
    if value < low or value > high:
        return None
    for k, (lo, hi) in enumerate(edges):
        if lo <= value < hi:
            return k
    return len(edges) - 1


def _number_requested(spec: dict[str, Any], edges: list[tuple[float, float]]) -> list[float]:
    low, high = float(spec["min"]), float(spec["max"])
    integer = bool(spec.get("integer"))
    if spec.get("distribution") == "normal":
        mean = float(spec.get("mean") if spec.get("mean") is not None else (low + high) / 2)
        stddev = float(spec.get("stddev") or max((high - low) / 6, 1e-9))

        def mass(a: float, b: float) -> float:
            return max(0.0, _normal_cdf(b, mean, stddev) - _normal_cdf(a, mean, stddev))

        if integer and edges and edges[0][1] - edges[0][0] == 1:
            raw = [mass(max(low, lo - 0.5), min(high, lo + 0.5)) for lo, _ in edges]
        else:
            raw = [mass(lo, hi) for lo, hi in edges]
        total = sum(raw) or 1.0
        return [r / total for r in raw]
    if integer and edges and edges[0][1] - edges[0][0] == 1:
        return [1 / len(edges)] * len(edges)
    span = high - low
    if span <= 0:
        return [1.0]
    return [(hi - lo) / span for lo, hi in edges]


def _compare_bins(
    edges: list[tuple[float, float]], requested: list[float], observed: list[float], label: Any
) -> dict[str, Any]:
    counts = [0] * len(edges)
    outside = 0
    for value in observed:
        k = _bin_of(value, edges)
        if k is None:
            outside += 1
        else:
            counts[k] += 1
    n = len(observed)
    bins = [
        {
            "lo": lo,
            "hi": hi,
            "label": label(lo, hi),
            "requested": round(requested[k], 4),
            "observed": round(counts[k] / n, 4) if n else 0.0,
            "count": counts[k],
        }
        for k, (lo, hi) in enumerate(edges)
    ]
    return {"bins": bins, "outside": outside, "records": n, "maxDeviation": _deviation(bins)}


def _deviation(rows: list[dict[str, Any]]) -> float:
    return round(max((abs(r["requested"] - r["observed"]) for r in rows), default=0.0), 4)


def _variable_section(spec: dict[str, Any], values: list[Any]) -> dict[str, Any]:
    kind = spec.get("kind")
    out: dict[str, Any] = {"name": spec.get("name"), "kind": kind, "records": len(values)}
    if kind == "category":
        options = list(spec.get("values") or [])
        weights = spec.get("weights") or [1.0] * len(options)
        total = float(sum(weights)) or 1.0
        counts = Counter(_top_key(v) for v in values)
        rows = [
            {
                "value": option,
                "requested": round(weight / total, 4),
                "observed": round(counts.get(_top_key(option), 0) / len(values), 4)
                if values
                else 0.0,
                "count": counts.get(_top_key(option), 0),
            }
            for option, weight in zip(options, weights, strict=False)
        ]
        known = {_top_key(o) for o in options}
        out["values"] = rows
        out["other"] = sum(c for v, c in counts.items() if v not in known)
        out["maxDeviation"] = _deviation(rows)
        return out
    if kind == "number":
        numbers = [float(v) for v in values if _is_number(v)]
        integer = bool(spec.get("integer"))
        edges = _bin_edges(float(spec["min"]), float(spec["max"]), integer)
        out["distribution"] = spec.get("distribution") or "uniform"
        out.update(_compare_bins(edges, _number_requested(spec, edges), numbers, lambda lo, hi: lo))
        out["mean"] = round(math.fsum(numbers) / len(numbers), 6) if numbers else None
        return out
    if kind == "date":
        start = dt.date.fromisoformat(str(spec["start"])[:10]).toordinal()
        end = dt.date.fromisoformat(str(spec["end"])[:10]).toordinal()
        edges = _bin_edges(float(start), float(end), True)
        if edges and edges[0][1] - edges[0][0] == 1:
            requested = [1 / len(edges)] * len(edges)
        else:  # whole days: a bin holds the days whose ordinal falls in it
            days = end - start + 1
            requested = []
            for k, (lo, hi) in enumerate(edges):
                last = k == len(edges) - 1
                inside = [d for d in range(start, end + 1) if lo <= d < hi or (last and d == hi)]
                requested.append(len(inside) / days)
        days_seen = [float(d) for d in (day_of(v) for v in values) if d is not None]
        out.update(_compare_bins(edges, requested, days_seen, lambda lo, hi: _iso_day(lo)))
        return out
    if kind == "subset":
        options = list(spec.get("values") or [])
        smallest = int(spec.get("min_size", spec.get("minSize", 1)) or 0)
        largest = spec.get("max_size", spec.get("maxSize"))
        largest = len(options) if largest is None else int(largest)
        expected = ((smallest + largest) / 2) / len(options) if options else 0.0
        lists = [v for v in values if isinstance(v, list)]
        counts = Counter(_top_key(item) for chosen in lists for item in chosen)
        rows = [
            {
                "value": option,
                "requested": round(expected, 4),
                "observed": round(counts.get(_top_key(option), 0) / len(lists), 4)
                if lists
                else 0.0,
                "count": counts.get(_top_key(option), 0),
            }
            for option in options
        ]
        out["values"] = rows
        out["maxDeviation"] = _deviation(rows)
        sizes = Counter(len(chosen) for chosen in lists)
        out["sizes"] = [
            {
                "size": size,
                "requested": round(1 / (largest - smallest + 1), 4),
                "observed": round(sizes.get(size, 0) / len(lists), 4) if lists else 0.0,
            }
            for size in range(smallest, largest + 1)
        ]
        return out
    if kind == "person":
        out["requested"] = {"attributes": spec.get("attributes"), "locale": spec.get("locale")}
        attributes: dict[str, Any] = {}
        for attribute in spec.get("attributes") or []:
            seen = [v.get(attribute) for v in values if isinstance(v, dict)]
            numbers = [float(s) for s in seen if _is_number(s)]
            if numbers and len(numbers) == len(seen):
                attributes[attribute] = {"histogram": histogram(numbers)}
            else:
                present = [s for s in seen if s is not None]
                attributes[attribute] = {
                    "distinct": len({_top_key(s) for s in present}),
                    "top": _top(Counter(_top_key(s) for s in present), len(present), 5),
                }
        out["attributes"] = attributes
        return out
    out["observed"] = _top(Counter(_top_key(v) for v in values), len(values))
    return out


def variable_section(spec: dict[str, Any], values: list[Any]) -> dict[str, Any]:
    """One variable's section; a declaration this report cannot read says so instead."""
    try:
        return _variable_section(spec, values)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        return {
            "name": spec.get("name"),
            "kind": spec.get("kind"),
            "records": len(values),
            "error": f"the declaration could not be read: {type(exc).__name__}",
        }


# --------------------------------------------------------------------------- the report


class ReportBuilder:
    """Feed every merged record (``add``), then ``finish``."""

    def __init__(
        self,
        *,
        schema: dict[str, Any] | None,
        variables: list[dict[str, Any]] | None,
        threshold: float,
    ) -> None:
        props = schema.get("properties") if isinstance(schema, dict) else None
        props = props if isinstance(props, dict) else {}
        self.fields: dict[str, FieldStats] = {
            str(name): FieldStats(str(name), field_kind(spec), True) for name, spec in props.items()
        }
        self.variables = [v for v in variables or [] if isinstance(v, dict) and v.get("name")]
        self.drawn: dict[str, list[Any]] = {str(v["name"]): [] for v in self.variables}
        self.skipped = skipped_fields(schema)
        self.near = NearDuplicates(threshold)
        self.ok = 0
        self.failed = 0
        self.reasons: Counter[str] = Counter()

    def add(self, entry: dict[str, Any]) -> None:
        if not entry.get("ok"):
            self.failed += 1
            self.reasons[str(entry.get("reason") or "failed")] += 1
            return
        self.ok += 1
        data = entry.get("data")
        if not isinstance(data, dict):
            data = {"value": data}
        for name, value in data.items():
            if value is None:
                continue
            stats = self.fields.get(name)
            if stats is None:
                stats = self.fields[name] = FieldStats(name, _kind_of_value(value), False)
            stats.add(value)
        drawn = entry.get("vars")
        if isinstance(drawn, dict):
            for name, values in self.drawn.items():
                if name in drawn:
                    values.append(drawn[name])
        self.near.add(int(entry["i"]), data, self.skipped)

    def finish(self, total: int) -> dict[str, Any]:
        done = self.ok + self.failed
        return {
            "records": {
                "total": total,
                "ok": self.ok,
                "failed": self.failed,
                "missing": max(0, total - done),
            },
            "fields": [stats.summary(self.ok) for stats in self.fields.values()],
            "variables": [
                variable_section(spec, self.drawn[str(spec["name"])]) for spec in self.variables
            ],
            "nearDuplicates": self.near.summary(self.ok),
            "failures": {"failed": self.failed, "reasons": dict(self.reasons.most_common())},
        }


def usage_of(peers: dict[str, Any], prices: tuple[float | None, float | None]) -> dict[str, Any]:
    """Tokens the gateway reported, summed over the peers; cost when prices are set."""
    tokens_in = sum(int(getattr(s, "tokens_in", 0) or 0) for s in peers.values())
    tokens_out = sum(int(getattr(s, "tokens_out", 0) or 0) for s in peers.values())
    usage: dict[str, Any] = {"tokensIn": tokens_in, "tokensOut": tokens_out, "cost": None}
    price_in, price_out = prices
    if price_in is not None or price_out is not None:
        cost_in = tokens_in * (price_in or 0.0) / 1_000_000
        cost_out = tokens_out * (price_out or 0.0) / 1_000_000
        usage["cost"] = {
            "input": round(cost_in, 6),
            "output": round(cost_out, 6),
            "total": round(cost_in + cost_out, 6),
            "pricePerMillionIn": price_in,
            "pricePerMillionOut": price_out,
        }
    return usage


# --------------------------------------------------------------------------- plumbing


def prices_of(services: Any, owner: str, details: Any) -> tuple[float | None, float | None]:
    """The input and output prices per million tokens of the job's inference profile."""
    profile_id = getattr(getattr(details, "inference", None), "profile_id", None)
    if not profile_id:
        return None, None
    settings = services.user_settings.get(owner)
    profile = next((p for p in settings.profiles if p.id == profile_id), None)
    if profile is None:
        return None, None
    return profile.price_in_per_million, profile.price_out_per_million


def job_report(
    services: Any, view: Any, details: Any, *, threshold: float | None = None
) -> dict[str, Any]:
    """The report of a job as its slices (and, while it runs, its latest records) say."""
    from datagems.job.export import merged_entries
    from datagems.job.state import result_cids
    from datagems.models import TERMINAL_STATUSES, now_iso

    job = view.job
    chosen = threshold or getattr(details, "near_duplicate_threshold", None)
    chosen = float(chosen or services.settings.near_duplicate_threshold)
    builder = ReportBuilder(
        schema=details.json_schema if details is not None else None,
        variables=getattr(details, "variables", None) if details is not None else None,
        threshold=chosen,
    )
    running = job.status not in TERMINAL_STATUSES
    latest: dict[int, dict[str, Any]] = {}
    if running:  # records finished since the last upload, as the peers last wrote them
        for state in view.peers.values():
            for record in state.recent:
                if record.ok and record.data is None:
                    continue
                latest[record.i] = {"i": record.i, "ok": record.ok, "data": record.data}
                if not record.ok:
                    latest[record.i]["reason"] = record.reason
    cids = result_cids(view.peers)
    if cids:
        for entry in merged_entries(services, job.id, partial=True):
            latest.pop(entry["i"], None)
            builder.add(entry)
    for index in sorted(latest):
        builder.add(latest[index])
    report = builder.finish(job.total_records)
    report["usage"] = usage_of(view.peers, prices_of(services, job.owner, details))
    return {
        "jobId": job.id,
        "status": job.status,
        "partial": running,
        "generatedAt": now_iso(),
        "basis": {"slices": len(cids), "latest": len(latest)},
        **report,
    }
