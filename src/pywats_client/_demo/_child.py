"""``python -m pywats_client._demo._child PARENT_PID COMMAND...``: a CLI command tied to its parent.

Runs ``pywats-client COMMAND...`` (the real CLI: the demo runs ``supervise``)
and stops it gracefully, as Ctrl+C would, once the process ``PARENT_PID`` is
gone. So a demo that is killed outright (closed terminal, ``kill -9``, Task
Manager) never leaves a supervisor and its workers running behind it; the
workers already stop by themselves when their supervisor goes.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence

__all__ = ["main", "watch_parent"]

#: Seconds between two checks that the parent still lives.
POLL_INTERVAL = 0.5


def _parent_alive(pid: int, create_time: float | None) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        return create_time is None or abs(proc.create_time() - create_time) < 1.0
    except psutil.Error:
        return False


def _stop_self() -> None:
    # raise_signal runs this process's own SIGTERM handler (the supervisor's
    # graceful stop) on every platform, unlike os.kill, which on Windows
    # terminates at once.
    signal.raise_signal(signal.SIGTERM)


def watch_parent(
    pid: int, *, interval: float = POLL_INTERVAL, cancel: threading.Event | None = None
) -> threading.Thread:
    """Start a daemon thread that stops this process gracefully when ``pid`` exits.

    Setting ``cancel`` ends the watch without stopping anything.
    """
    cancel = cancel or threading.Event()
    import psutil

    try:
        create_time: float | None = psutil.Process(pid).create_time()
    except psutil.Error:
        create_time = None

    def watch() -> None:
        while _parent_alive(pid, create_time):
            if cancel.wait(interval):
                return
        _stop_self()

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or not args[0].isdigit():
        sys.stderr.write("usage: python -m pywats_client._demo._child PARENT_PID COMMAND...\n")
        return 2
    from pywats_client.cli import main as cli_main

    watch_parent(int(args[0]))
    return cli_main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
