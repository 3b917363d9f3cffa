"""One supervisor per registry: an OS file lock plus a pid sidecar for the error message.

The lock (``<state_dir>/supervisor.lock``, filelock, never the soft variant)
is what excludes a second supervisor; the pid file only lets the refusal
name the holder. The OS drops the lock when the holder dies, even by SIGKILL,
so a stale lock never blocks a new supervisor.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import filelock

from pywats_client._fsutil import atomic_write_text, ensure_private_dir
from pywats_client.errors import InstanceLockedError

__all__ = ["LOCK_NAME", "PID_NAME", "SupervisorLock", "read_pid"]

LOCK_NAME = "supervisor.lock"
PID_NAME = "supervisor.pid"


def read_pid(path: Path) -> int | None:
    """The pid in a sidecar file, or None if missing or garbled."""
    try:
        return int(path.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _file_lock(path: Path) -> filelock.FileLock:
    # mode: owner-only, like every file of the queue and state folders
    kwargs: dict[str, Any] = {"timeout": 0, "thread_local": False, "mode": 0o600}
    try:  # filelock >= 3.20 can silently fall back to a soft lock: refuse that
        return filelock.FileLock(path, fallback_to_soft=False, **kwargs)
    except TypeError:
        return filelock.FileLock(path, **kwargs)


class SupervisorLock:
    """Held for the supervisor's whole life; ``acquire`` refuses naming the holder."""

    def __init__(self, state_dir: Path, registry_path: Path) -> None:
        self.state_dir = state_dir
        self.registry_path = registry_path
        self.lock_path = state_dir / LOCK_NAME
        self.pid_path = state_dir / PID_NAME
        self._lock: filelock.FileLock | None = None

    def acquire(self) -> None:
        ensure_private_dir(self.state_dir)
        lock = _file_lock(self.lock_path)
        try:
            lock.acquire()
        except filelock.Timeout:
            pid = read_pid(self.pid_path)
            holder = f"pid {pid}" if pid is not None else "another process"
            raise InstanceLockedError(
                f"another supervisor ({holder}) is already running for {self.registry_path} "
                f"(lock {self.lock_path}); stop it first, or use 'pywats-client status "
                f"--registry {self.registry_path}' to see what it runs",
                holder_pid=pid,
            ) from None
        self._lock = lock
        atomic_write_text(self.pid_path, f"{os.getpid()}\n", sync_dir=False)

    def release(self) -> None:
        if self._lock is None:
            return
        with contextlib.suppress(OSError):
            if read_pid(self.pid_path) == os.getpid():
                self.pid_path.unlink()
        self._lock.release()
        self._lock = None

    @property
    def held(self) -> bool:
        return self._lock is not None
