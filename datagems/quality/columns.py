"""Export columns of the per-record variables (the export option ``vars``).

Each ok record of the export gains ``_vars`` (its variables' values) and ``_seedRow``
(the seed row it was conditioned on), when it has them; in CSV the values are flattened
to one column per variable (``_vars.city``), a person or a subset as JSON text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

VARS_COLUMN = "_vars"
SEED_ROW_COLUMN = "_seedRow"


def with_var_columns(entries: Iterator[dict[str, Any]], *, flat: bool) -> Iterator[dict]:
    """``entries`` (merged slice lines) whose record data gains the variables' columns."""
    for entry in entries:
        data = entry.get("data")
        if not entry.get("ok") or not isinstance(data, dict):
            yield entry
            continue
        extra: dict[str, Any] = {}
        values = entry.get("vars")
        if isinstance(values, dict) and values:
            if flat:
                extra.update({f"{VARS_COLUMN}.{name}": v for name, v in values.items()})
            else:
                extra[VARS_COLUMN] = values
        if entry.get("seedRow") is not None:
            extra[SEED_ROW_COLUMN] = entry["seedRow"]
        yield {**entry, "data": {**data, **extra}} if extra else entry
