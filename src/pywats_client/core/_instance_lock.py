"""One worker per instance: ``<queue>/instance.lock`` plus a pid sidecar.

The lock is what keeps a second worker off the same queue; the pid file only
lets the refusal name the holder (see :mod:`pywats_client._pidlock`).
"""

from __future__ import annotations

import errno
from pathlib import Path

from pywats_client._fsutil import ensure_private_dir
from pywats_client._pidlock import PidLock, read_pid
from pywats_client.core.config import ClientConfig
from pywats_client.errors import ConfigError, InstanceLockedError

__all__ = ["LOCK_NAME", "PID_NAME", "InstanceLock", "acquire_instance_lock", "read_holder_pid"]

LOCK_NAME = "instance.lock"
PID_NAME = "instance.pid"


def read_holder_pid(queue_dir: Path) -> int | None:
    """The pid written by the lock holder, or None if missing or garbled."""
    return read_pid(queue_dir / PID_NAME)


class InstanceLock(PidLock):
    """Held while an instance runs; :meth:`release` (or ``with``) gives it up."""

    def __init__(self, config: ClientConfig) -> None:
        super().__init__(config.queue_dir / LOCK_NAME, config.queue_dir / PID_NAME)
        self.queue_dir = config.queue_dir
        self.instance_name = config.instance_name

    def acquire(self) -> InstanceLock:
        try:
            ensure_private_dir(self.queue_dir)
        except OSError as exc:
            raise ConfigError(
                f"{self.queue_dir} cannot be created ({exc.strerror or exc}); "
                "fix queue_path or the folder's permissions",
                key="queue_path",
            ) from None
        try:
            self.take(self._refused)
        except OSError as exc:
            self.release()
            if not _refused_access(exc):
                raise  # a full disk, a share not ready...: retried like a crash
            raise ConfigError(
                f"{self.queue_dir} is not writable for this account ({exc.strerror or exc}: "
                f"{exc.filename or self.lock_path}); give the account the station runs as "
                "write access to that folder (or set queue_path to one it may write), "
                "then start the station again",
                key="queue_path",
            ) from None
        return self

    def _refused(self, pid: int | None) -> InstanceLockedError:
        holder = f"pid {pid}" if pid is not None else "another process"
        return InstanceLockedError(
            f"instance {self.instance_name!r} is already running ({holder} holds "
            f"{self.lock_path}); stop that process first, or give this config its own "
            "queue_path",
            holder_pid=pid,
        )

    def __enter__(self) -> InstanceLock:
        return self if self.held else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _refused_access(exc: OSError) -> bool:
    """This account may not write there (a setup mistake, not a passing fault)."""
    return isinstance(exc, PermissionError) or exc.errno == errno.EROFS


def acquire_instance_lock(config: ClientConfig) -> InstanceLock:
    """Take ``<queue>/instance.lock`` now (no waiting) and write ``instance.pid``.

    Raises :class:`InstanceLockedError` naming the holder's pid when another
    process runs this instance.
    """
    return InstanceLock(config).acquire()
