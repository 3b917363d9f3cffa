"""Core of one instance: configuration, the instances registry, the orchestrator."""

from pywats_client.core.config import TOKEN_ENV_VAR, ClientConfig, PostAction, RetryPolicy
from pywats_client.core.registry import InstanceEntry, Registry, SupervisorSettings
from pywats_client.core.snapshot import ClientSnapshot

__all__ = [
    "TOKEN_ENV_VAR",
    "ClientConfig",
    "ClientSnapshot",
    "InstanceEntry",
    "PostAction",
    "Registry",
    "RetryPolicy",
    "SupervisorSettings",
]
