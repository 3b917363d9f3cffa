"""Operator control of a running supervisor, for the CLI and the desktop GUI.

``SupervisorControl(registry).restart("station-3")`` asks the supervisor of
that registry, over a local channel it owns (a Unix socket or a Windows
named pipe, authenticated with a key only its user can read; never a TCP
port), to act on one instance and leave the others alone. See
``docs/gui-api.md``. ``pywats_client.list_instances`` reads the status.
"""

from __future__ import annotations

from pywats_client.control._client import DEFAULT_TIMEOUT, DEFAULT_WAIT, SupervisorControl
from pywats_client.control._errors import (
    ControlRefused,
    ControlUnavailable,
    SupervisorNotRunning,
    UnknownInstance,
)
from pywats_client.control._results import ControlResult, InstanceResult, SupervisorInfo

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_WAIT",
    "ControlRefused",
    "ControlResult",
    "ControlUnavailable",
    "InstanceResult",
    "SupervisorControl",
    "SupervisorInfo",
    "SupervisorNotRunning",
    "UnknownInstance",
]
