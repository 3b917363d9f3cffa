"""The engine of ``pywats-client demo``: the whole system, locally, with no WATS account.

A stand-in WATS server, a real supervisor with a few stations in a temp
folder, a stream of sample files of every built-in format (one bad, one
written slowly), one worker killed halfway, and a verdict counted from what
the server holds: nothing lost, nothing doubled. Private: the CLI command is
the interface. Names load on first use, so the supervisor child
(``_demo._child``) starts without importing the demo's engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pywats_client._demo._run import Demo, DemoOptions, run_demo
    from pywats_client._demo._summary import DemoSummary

__all__ = ["Demo", "DemoOptions", "DemoSummary", "run_demo"]

_LAZY = {
    "Demo": "_run",
    "DemoOptions": "_run",
    "run_demo": "_run",
    "DemoSummary": "_summary",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
