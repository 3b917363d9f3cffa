"""One supervisor per registry: ``<state_dir>/supervisor.lock`` plus a pid sidecar."""

from __future__ import annotations

from pathlib import Path

from pywats_client._fsutil import ensure_private_dir
from pywats_client._pidlock import PidLock
from pywats_client.errors import InstanceLockedError

__all__ = ["LOCK_NAME", "PID_NAME", "SupervisorLock"]

LOCK_NAME = "supervisor.lock"
PID_NAME = "supervisor.pid"


class SupervisorLock(PidLock):
    """Held for the supervisor's whole life; ``acquire`` refuses naming the holder."""

    def __init__(self, state_dir: Path, registry_path: Path) -> None:
        super().__init__(state_dir / LOCK_NAME, state_dir / PID_NAME)
        self.state_dir = state_dir
        self.registry_path = registry_path

    def acquire(self) -> None:
        ensure_private_dir(self.state_dir)
        self.take(self._refused)

    def _refused(self, pid: int | None) -> InstanceLockedError:
        holder = f"pid {pid}" if pid is not None else "another process"
        return InstanceLockedError(
            f"another supervisor ({holder}) is already running for {self.registry_path} "
            f"(lock {self.lock_path}); stop it first, or use 'pywats-client status "
            f"--registry {self.registry_path}' to see what it runs",
            holder_pid=pid,
        )
