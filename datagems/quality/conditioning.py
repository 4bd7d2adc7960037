"""What conditions one record beyond the schema: its variables' values and its seed row.

Built once per job from its details (``Conditioning.of``; the seed rows are loaded from
R1FS by the caller), then asked per record: ``values`` (written into the result line as
``vars``), ``row_index`` (``seedRow``) and ``prompt_lines`` (the record's prompt). Every
answer is a pure function of (job seed, record index), so it is the same on every replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from datagems.quality import seeds
from datagems.quality import variables as vars_

if TYPE_CHECKING:
    from datagems.models import JobDetails


def has_conditioning(details: JobDetails) -> bool:
    """Does the job declare variables or seed data (which the original app ignores)?"""
    return bool(details.variables) or bool(details.seed_data)


@dataclass(frozen=True)
class Conditioning:
    seed: int
    variables: tuple[vars_.Variable, ...] = ()
    seed_data: seeds.SeedData | None = None
    rows: tuple[dict[str, Any], ...] = ()

    @classmethod
    def of(
        cls, details: JobDetails, rows: list[dict[str, Any]] | None = None
    ) -> Conditioning | None:
        """The job's conditioning (``None`` when it declares none). ``rows``: its seed
        rows, loaded from ``details.seed_data`` (required when it has some)."""
        if not has_conditioning(details):
            return None
        declared = tuple(vars_.parse_variables(details.variables))
        seed_data = seeds.SeedData.model_validate(details.seed_data) if details.seed_data else None
        if seed_data is not None and not rows:
            raise ValueError("the job's seed rows were not loaded")
        return cls(
            seed=vars_.job_seed(details.id, details.seed),
            variables=declared,
            seed_data=seed_data,
            rows=tuple(rows or ()),
        )

    def values(self, index: int) -> dict[str, Any]:
        return vars_.draws(list(self.variables), self.seed, index)

    def row_index(self, index: int) -> int | None:
        if self.seed_data is None or not self.rows:
            return None
        return seeds.row_for(self.seed_data.mode, self.seed, index, len(self.rows))

    def entry(self, index: int) -> dict[str, Any]:
        """What the record's result line gains: ``vars`` and ``seedRow``."""
        extra: dict[str, Any] = {}
        if self.variables:
            extra["vars"] = self.values(index)
        row = self.row_index(index)
        if row is not None:
            extra["seedRow"] = row
        return extra

    def prompt_lines(self, index: int) -> list[str]:
        lines: list[str] = []
        row = self.row_index(index)
        if row is not None:
            lines += seeds.prompt_lines(self.rows[row])
        if self.variables:
            lines += vars_.prompt_lines(self.values(index))
        return lines


def load(details: JobDetails, r1fs: Any, secret: str | None = None) -> Conditioning | None:
    """The job's conditioning with its seed rows read from R1FS (``StoreError`` up)."""
    if not has_conditioning(details):
        return None
    rows = None
    if details.seed_data:
        rows = seeds.load_rows(r1fs, str(details.seed_data.get("cid", "")), secret=secret)
    return Conditioning.of(details, rows)
