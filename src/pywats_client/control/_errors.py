"""Typed errors of the control channel, classified by what the caller must do.

* :class:`SupervisorNotRunning` - nothing to talk to: start the supervisor
  (a :class:`~pywats_client.errors.FatalError`: an operator must act).
* :class:`UnknownInstance` - the request named an instance the supervisor
  does not have: fix the name or the registry (a
  :class:`~pywats_client.errors.ConfigError`).
* :class:`ControlRefused` - the supervisor (or its key file) refused the
  request: wrong key, disabled instance, shutting down (a ``FatalError``).
* :class:`ControlUnavailable` - the supervisor runs but did not answer in
  time or dropped the connection: try again (a
  :class:`~pywats_client.errors.RetryableError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pywats_client.errors import ConfigError, FatalError, RetryableError

__all__ = ["ControlRefused", "ControlUnavailable", "SupervisorNotRunning", "UnknownInstance"]


class SupervisorNotRunning(FatalError):
    """No supervisor runs for this registry; the message says how to start one."""

    def __init__(self, registry: Path, detail: str | None = None) -> None:
        self.registry = registry
        self.detail = detail
        why = f" ({detail})" if detail else ""
        super().__init__(
            f"no supervisor is running for {registry}{why}; start it with "
            f"'pywats-client supervise --registry {registry}' (or start the service that runs it)"
        )


class UnknownInstance(ConfigError):
    """The request named instances the supervisor does not know; ``known`` lists the others."""

    def __init__(self, names: Sequence[str], known: Sequence[str], registry: Path) -> None:
        self.names = tuple(names)
        self.known = tuple(known)
        listed = ", ".join(repr(n) for n in self.names)
        plural = "instances" if len(self.names) > 1 else "instance"
        super().__init__(
            f"no {plural} named {listed} (known: {', '.join(self.known) or 'none'}); "
            "check the name, or add it to the registry and run 'pywats-client reload'",
            file=registry,
            key="instance.name",
        )


class ControlRefused(FatalError):
    """The supervisor refused the request, or the key to ask it could not be used."""


class ControlUnavailable(RetryableError):
    """The supervisor runs but did not answer in time (or dropped the connection)."""
