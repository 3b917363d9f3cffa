"""Process model: one isolated worker process per station, heartbeats, restarts, status.

``Supervisor(registry).run()`` is ``pywats-client supervise``;
``list_instances(registry)`` is what ``pywats-client status`` and the GUI read.
Importing this package starts nothing, and loads its modules on first use: a
worker process imports only ``pywats_client.supervisor.worker`` and must
start (and send its first heartbeat) quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pywats_client import _lazy

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

_STATES = "pywats_client.supervisor._states"
_STATUS = "pywats_client.supervisor._status"
__getattr__, __dir__ = _lazy.lazy_exports(
    globals(),
    {
        "EXIT_CONFIG": _STATES,
        "EXIT_LOCKED": _STATES,
        "State": _STATES,
        "InstanceState": f"{_STATES}:State",
        "InstanceStatus": _STATUS,
        "StatusReport": _STATUS,
        "SupervisorStatus": _STATUS,
        "list_instances": _STATUS,
        "status_report": _STATUS,
        "Supervisor": "pywats_client.supervisor._supervisor",
    },
)
