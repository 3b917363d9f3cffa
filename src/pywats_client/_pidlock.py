"""An exclusive OS file lock plus a pid sidecar, so a refusal can name the holder.

The lock is a real OS lock (filelock, never the soft variant): the OS drops it
when its holder dies, even by SIGKILL, so a stale lock never blocks a restart.
The pid file is for messages only; it is never trusted for exclusion.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import filelock

from pywats_client._fsutil import OWNER_ONLY_FILE, atomic_write_text

__all__ = ["PidLock", "exclusive_lock", "read_pid"]


def read_pid(path: Path) -> int | None:
    """The pid in a sidecar file, or None if missing or garbled."""
    try:
        return int(path.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def exclusive_lock(path: Path) -> filelock.FileLock:
    """An OS lock on ``path`` that ``acquire()`` takes without waiting (or raises Timeout)."""
    # owner-only, like every file of the queue and state folders
    kwargs: dict[str, Any] = {"timeout": 0, "thread_local": False, "mode": OWNER_ONLY_FILE}
    try:  # newer filelock can silently fall back to a soft lock: refuse that
        return filelock.FileLock(path, fallback_to_soft=False, **kwargs)
    except TypeError:
        return filelock.FileLock(path, **kwargs)


class PidLock:
    """Take ``lock_path`` without waiting; write our pid to ``pid_path`` while held."""

    def __init__(self, lock_path: Path, pid_path: Path) -> None:
        self.lock_path = lock_path
        self.pid_path = pid_path
        self._lock: filelock.FileLock | None = None

    @property
    def held(self) -> bool:
        return self._lock is not None

    def take(self, refused: Callable[[int | None], Exception]) -> None:
        """Take the lock, or raise ``refused(holder_pid)`` if another process has it."""
        lock = exclusive_lock(self.lock_path)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise refused(read_pid(self.pid_path)) from None
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
