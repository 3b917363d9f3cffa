"""Whether an instance's worker runs now, read from its queue folder without locking.

Status readers (the CLI, a GUI) must never take ``<queue>/instance.lock``, not
even for an instant to test it: a worker starting at that moment would be
refused. The lock holder writes its pid to ``instance.pid`` right after taking
the lock and removes the file when it lets go; a file left behind by a killed
worker names a process that is gone, or (pid reused) one that started after
the file was written.
"""

from __future__ import annotations

from pathlib import Path

import psutil

from pywats_client.core._instance_lock import PID_NAME, read_holder_pid

__all__ = ["running_worker_pid"]

#: Clock slack between a process's start time and its pid file's mtime.
_START_SLACK_S = 2.0


def running_worker_pid(queue_dir: Path) -> int | None:
    """The pid of the process running the instance of ``queue_dir``, or None if none does."""
    try:
        written = (queue_dir / PID_NAME).stat().st_mtime
    except OSError:
        return None
    pid = read_holder_pid(queue_dir)
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        if process.create_time() > written + _START_SLACK_S:
            return None  # the pid now belongs to a process started after the file was written
        return None if process.status() == psutil.STATUS_ZOMBIE else pid
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:  # another account's process (a service): it exists
        return pid
