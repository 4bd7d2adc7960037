"""The scenarios of the benchmark (issue 5), one module each over shared probes (``probes``)
and results (``base``). Each one starts its own processes on 127.0.0.1, runs within its
time bound and returns a ``Scenario`` with its figures, each next to its target. Sizes come
from ``Sizes`` (full, or tiny with ``--quick``). A scenario function may carry
``bound_for(quick) -> seconds`` for a time bound of its own.
"""

from __future__ import annotations

from collections.abc import Callable

from datagems.bench.procs import Deadline
from datagems.bench.scenarios.api import api_under_load
from datagems.bench.scenarios.base import Context, Scenario
from datagems.bench.scenarios.export import export
from datagems.bench.scenarios.fleet import fleet_scaling
from datagems.bench.scenarios.fleet_size import fleet_size
from datagems.bench.scenarios.history import history
from datagems.bench.scenarios.memory import memory
from datagems.bench.scenarios.overhead import no_fixed_overhead
from datagems.bench.scenarios.schema_set import schema_set
from datagems.bench.scenarios.throughput import throughput
from datagems.bench.scenarios.writes import cstore_writes

SCENARIOS: dict[str, tuple[str, Callable[[Context, Deadline], Scenario]]] = {
    "1": ("throughput", throughput),
    "2": ("overhead", no_fixed_overhead),
    "3": ("fleet", fleet_scaling),
    "4": ("writes", cstore_writes),
    "5": ("memory", memory),
    "6": ("export", export),
    "7": ("api", api_under_load),
    "8": ("schemas", schema_set),
    "history": ("history", history),
    "fleet-size": ("fleet-size", fleet_size),
}
