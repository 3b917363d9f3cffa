"""pywats-client-service: the station-side WATS client service.

Light on import (no threads, no processes, no heavy modules): the names below
load their modules on first use, so a GUI can ``import pywats_client`` freely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pywats_client import _lazy
from pywats_client._version import __version__

if TYPE_CHECKING:
    from pywats_client.control import (
        ControlRefused,
        ControlResult,
        ControlUnavailable,
        InstanceResult,
        SupervisorControl,
        SupervisorInfo,
        SupervisorNotRunning,
        UnknownInstance,
    )
    from pywats_client.supervisor import InstanceState, InstanceStatus, list_instances

__all__ = [
    "ControlRefused",
    "ControlResult",
    "ControlUnavailable",
    "InstanceResult",
    "InstanceState",
    "InstanceStatus",
    "SupervisorControl",
    "SupervisorInfo",
    "SupervisorNotRunning",
    "UnknownInstance",
    "__version__",
    "list_instances",
]

__getattr__, __dir__ = _lazy.lazy_exports(
    globals(),
    {
        **dict.fromkeys(
            (
                "ControlRefused",
                "ControlResult",
                "ControlUnavailable",
                "InstanceResult",
                "SupervisorControl",
                "SupervisorInfo",
                "SupervisorNotRunning",
                "UnknownInstance",
            ),
            "pywats_client.control",
        ),
        "InstanceState": "pywats_client.supervisor",
        "InstanceStatus": "pywats_client.supervisor",
        "list_instances": "pywats_client.supervisor",
    },
)
