"""Core of one instance: configuration, the instances registry, the orchestrator.

``WATSClient`` (and ``acquire_instance_lock``) load on first use: they pull in
the services, converters and queue, which tools reading only a config need not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pywats_client import _lazy
from pywats_client.core.config import TOKEN_ENV_VAR, ClientConfig, PostAction, RetryPolicy
from pywats_client.core.registry import InstanceEntry, Registry, SupervisorSettings
from pywats_client.core.snapshot import ClientSnapshot

if TYPE_CHECKING:
    from pywats_client.core.client import WATSClient, acquire_instance_lock

__all__ = [
    "TOKEN_ENV_VAR",
    "ClientConfig",
    "ClientSnapshot",
    "InstanceEntry",
    "PostAction",
    "Registry",
    "RetryPolicy",
    "SupervisorSettings",
    "WATSClient",
    "acquire_instance_lock",
]

__getattr__, __dir__ = _lazy.lazy_exports(
    globals(),
    dict.fromkeys(("WATSClient", "acquire_instance_lock"), "pywats_client.core.client"),
)
