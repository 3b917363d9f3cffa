"""The engine of ``pywats-client demo``: the whole system, locally, with no WATS account.

A stand-in WATS server, a real supervisor with a few stations in a temp
folder, a stream of sample files of every built-in format (one bad, one
written slowly), one worker killed halfway, and a verdict counted from what
the server holds: nothing lost, nothing doubled. Private: the CLI command is
the interface. Names load on first use, so the supervisor child
(``_demo._child``) starts without importing the demo's engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pywats_client import _lazy

if TYPE_CHECKING:
    from pywats_client._demo._run import Demo, DemoOptions, run_demo
    from pywats_client._demo._summary import DemoSummary

__all__ = ["Demo", "DemoOptions", "DemoSummary", "run_demo"]

__getattr__, __dir__ = _lazy.lazy_exports(
    globals(),
    {
        "Demo": "pywats_client._demo._run",
        "DemoOptions": "pywats_client._demo._run",
        "run_demo": "pywats_client._demo._run",
        "DemoSummary": "pywats_client._demo._summary",
    },
)
