"""The scenarios of ``python -m bench``, in the order they run.

Each module has ``NAME`` and ``run(ctx: Context) -> list[Figure]``; its
docstring says what it measures and how.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["SCENARIOS", "load"]

#: name -> module; the default run goes through all of them in this order.
SCENARIOS: dict[str, str] = {
    "disk": "bench.scenarios.disk",
    "standin": "bench.scenarios.standin",
    "e2e": "bench.scenarios.e2e",
    "stages": "bench.scenarios.stages",
    "latency": "bench.scenarios.latency",
    "backlog": "bench.scenarios.backlog",
    "restart": "bench.scenarios.restart",
    "footprint": "bench.scenarios.footprint",
    "bigfile": "bench.scenarios.bigfile",
    "scan": "bench.scenarios.scan",
}


def load(name: str) -> ModuleType:
    return importlib.import_module(SCENARIOS[name])
