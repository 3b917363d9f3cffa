"""Deadlines for blocking connection I/O.

``multiprocessing.connection`` reads and writes have no timeout: a peer that
sends half a message and then nothing would block the reading thread
forever. A :class:`Watchdog` thread aborts the I/O of every connection past
its deadline (``shutdown`` of the socket on POSIX, ``CancelIoEx`` of the pipe
on Windows), so the blocked call fails and its thread ends: OSError/EOFError,
or on Windows a RuntimeError from ``PipeConnection`` (it does not expect an
aborted read). The thread runs only while something is watched.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    Conn = Connection[Any, Any]

__all__ = ["Watch", "Watchdog", "abort_io"]


def abort_io(conn: Conn) -> None:
    """Make blocked reads and writes on ``conn`` (in any thread) fail now."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        handle = conn.fileno()
        if sys.platform == "win32":
            kernel32 = getattr(ctypes, "windll").kernel32  # noqa: B009 - absent on POSIX
            kernel32.CancelIoEx(ctypes.c_void_p(handle), None)
        else:
            with socket.socket(fileno=os.dup(handle)) as sock:
                sock.shutdown(socket.SHUT_RDWR)


class Watch:
    """One watched connection; :meth:`finish` it before closing the connection."""

    def __init__(self, dog: Watchdog, conn: Conn, deadline: float) -> None:
        self._dog = dog
        self.conn = conn
        self.deadline = deadline
        self.expired = False
        self._lock = threading.Lock()
        self._finished = False

    def extend(self, seconds: float) -> None:
        """Move the deadline to ``seconds`` from now."""
        self.deadline = self._dog.clock() + seconds

    def abort(self) -> None:
        with self._lock:
            if self._finished:
                return
            self.expired = True
            abort_io(self.conn)

    def finish(self) -> None:
        with self._lock:  # waits for an abort in progress: never touches a reused fd
            self._finished = True
        self._dog.forget(self)

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finish()


class Watchdog:
    """Aborts connections whose deadline passed (checked every ``tick`` seconds)."""

    def __init__(self, *, tick: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self.tick = tick
        self.clock = clock
        self._watches: set[Watch] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, conn: Conn, seconds: float) -> Watch:
        watch = Watch(self, conn, self.clock() + seconds)
        with self._cond:
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="pywats-control-watchdog", daemon=True
                )
                self._thread.start()
        return watch

    def forget(self, watch: Watch) -> None:
        with self._cond:
            self._watches.discard(watch)

    def _run(self) -> None:
        with self._cond:
            while self._watches:
                now = self.clock()
                overdue = [w for w in self._watches if now >= w.deadline]
                self._cond.release()
                try:  # abort outside the lock: finish() may be waiting on a watch's lock
                    for watch in overdue:
                        watch.abort()
                finally:
                    self._cond.acquire()
                self._cond.wait(self.tick)
            self._thread = None
