"""Process model: one isolated worker process per station, heartbeats, restarts, status.

``Supervisor(registry).run()`` is ``pywats-client supervise``;
``list_instances(registry)`` is what ``pywats-client status`` and the GUI read.
Importing this package starts nothing, and loads its modules on first use: a
worker process imports only ``pywats_client.supervisor.worker`` and must
start (and send its first heartbeat) quickly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pywats_client.supervisor._states import EXIT_CONFIG, EXIT_LOCKED, State
    from pywats_client.supervisor._states import State as InstanceState
    from pywats_client.supervisor._status import (
        InstanceStatus,
        StatusReport,
        SupervisorStatus,
        list_instances,
        status_report,
    )
    from pywats_client.supervisor._supervisor import Supervisor

__all__ = [
    "EXIT_CONFIG",
    "EXIT_LOCKED",
    "InstanceState",
    "InstanceStatus",
    "State",
    "StatusReport",
    "Supervisor",
    "SupervisorStatus",
    "list_instances",
    "status_report",
]

_LAZY = {
    "EXIT_CONFIG": ("_states", "EXIT_CONFIG"),
    "EXIT_LOCKED": ("_states", "EXIT_LOCKED"),
    "State": ("_states", "State"),
    "InstanceState": ("_states", "State"),
    "InstanceStatus": ("_status", "InstanceStatus"),
    "StatusReport": ("_status", "StatusReport"),
    "SupervisorStatus": ("_status", "SupervisorStatus"),
    "list_instances": ("_status", "list_instances"),
    "status_report": ("_status", "status_report"),
    "Supervisor": ("_supervisor", "Supervisor"),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{target[0]}"), target[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
