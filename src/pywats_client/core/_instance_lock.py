"""One worker per instance: an OS file lock on the queue folder plus a pid sidecar.

The lock (``<queue>/instance.lock``, a real OS lock via filelock, never the
soft variant) is what keeps a second worker off the same queue; the pid file
only lets the refusal name the holder. The OS drops the lock when its holder
dies, even by SIGKILL, so a stale lock never blocks a restart.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import filelock

from pywats_client._fsutil import atomic_write_text, ensure_private_dir
from pywats_client.core.config import ClientConfig
from pywats_client.errors import ConfigError, InstanceLockedError

__all__ = ["LOCK_NAME", "PID_NAME", "InstanceLock", "acquire_instance_lock", "read_holder_pid"]

LOCK_NAME = "instance.lock"
PID_NAME = "instance.pid"


def read_holder_pid(queue_dir: Path) -> int | None:
    """The pid written by the lock holder, or None if missing or garbled."""
    try:
        return int((queue_dir / PID_NAME).read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _file_lock(path: Path) -> filelock.FileLock:
    # mode: owner-only, like every file of the queue and state folders
    kwargs: dict[str, Any] = {"timeout": 0, "thread_local": False, "mode": 0o600}
    try:  # newer filelock may fall back to a soft lock silently: refuse that
        return filelock.FileLock(path, fallback_to_soft=False, **kwargs)
    except TypeError:
        return filelock.FileLock(path, **kwargs)


class InstanceLock:
    """Held while an instance runs; :meth:`release` (or ``with``) gives it up."""

    def __init__(self, config: ClientConfig) -> None:
        self.queue_dir = config.queue_dir
        self.instance_name = config.instance_name
        self.lock_path = self.queue_dir / LOCK_NAME
        self.pid_path = self.queue_dir / PID_NAME
        self._lock: filelock.FileLock | None = None

    def acquire(self) -> InstanceLock:
        try:
            ensure_private_dir(self.queue_dir)
        except OSError as exc:
            raise ConfigError(
                f"{self.queue_dir} cannot be created ({exc.strerror or exc}); "
                "fix queue_path or the folder's permissions",
                key="queue_path",
            ) from None
        lock = _file_lock(self.lock_path)
        try:
            lock.acquire()
        except filelock.Timeout:
            pid = read_holder_pid(self.queue_dir)
            holder = f"pid {pid}" if pid is not None else "another process"
            raise InstanceLockedError(
                f"instance {self.instance_name!r} is already running ({holder} holds "
                f"{self.lock_path}); stop that process first, or give this config its own "
                "queue_path",
                holder_pid=pid,
            ) from None
        self._lock = lock
        atomic_write_text(self.pid_path, f"{os.getpid()}\n")
        return self

    @property
    def held(self) -> bool:
        return self._lock is not None

    def release(self) -> None:
        if self._lock is None:
            return
        with contextlib.suppress(OSError):
            if read_holder_pid(self.queue_dir) == os.getpid():
                self.pid_path.unlink()
        self._lock.release()
        self._lock = None

    def __enter__(self) -> InstanceLock:
        return self if self.held else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire_instance_lock(config: ClientConfig) -> InstanceLock:
    """Take ``<queue>/instance.lock`` now (no waiting) and write ``instance.pid``.

    Raises :class:`InstanceLockedError` naming the holder's pid when another
    process runs this instance.
    """
    return InstanceLock(config).acquire()
