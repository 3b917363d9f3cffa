"""pywats-client-service: the station-side WATS client service.

Light on import (no threads, no processes, no heavy modules): the names below
load their modules on first use, so a GUI can ``import pywats_client`` freely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

_LAZY = {
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
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pywats_client' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
