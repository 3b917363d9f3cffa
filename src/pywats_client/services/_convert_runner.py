"""Run converters on a small pool of threads with a timeout, abandoning the ones that hang.

A thread cannot be killed, so a converter past ``converter_timeout`` is
*abandoned*: the caller gets a timeout result and goes on, the thread keeps
running as a daemon (it never blocks process exit, unlike a
``ThreadPoolExecutor`` worker) and leaves the pool; the next conversion starts
a replacement. Several stuck threads mean the process should be restarted;
:attr:`ConvertRunner.stuck` says how many are still alive. The timeout outcome
carries the stuck thread's stack and the converter it was running (see
:func:`~pywats_client.converters.manager.converter_running_in`), so the error
file says which converter hung and where.

Threads are reused rather than started per file: a thread per file cost about
a sixth of the intake rate of small files (see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pywats_client.converters.manager import __file__ as _manager_file
from pywats_client.converters.manager import converter_running_in

__all__ = ["ConvertOutcome", "ConvertRunner"]

T = TypeVar("T")


@dataclass(frozen=True)
class ConvertOutcome(Generic[T]):
    """Exactly one of ``value``, ``error`` or ``timed_out`` is set.

    With ``timed_out``: ``stack`` is where the abandoned converter thread was,
    ``converter`` the converter it was running (``None`` when none was chosen
    yet, e.g. stuck in a ``can_convert``).
    """

    value: T | None = None
    error: BaseException | None = None
    timed_out: bool = False
    stack: str | None = None
    converter: str | None = None


class _State(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"  # timed out, or run() cancelled, before a thread took it
    ABANDONED = "abandoned"  # same, while running: its thread leaves the pool


class _Job(Generic[T]):
    """One conversion handed to the pool; its state moves under ``lock`` only."""

    def __init__(
        self, path: Path, loop: asyncio.AbstractEventLoop, future: asyncio.Future[ConvertOutcome[T]]
    ) -> None:
        self.path = path
        self.loop = loop
        self.future = future
        self.lock = threading.Lock()
        self.state = _State.QUEUED
        self.thread: threading.Thread | None = None

    def begin(self) -> bool:
        """Claim the job for the calling thread; False if it was cancelled meanwhile."""
        with self.lock:
            if self.state is not _State.QUEUED:
                return False
            self.state = _State.RUNNING
            self.thread = threading.current_thread()
            return True

    def complete(self) -> bool:
        """Mark the conversion finished; False if the caller had already given up on it."""
        with self.lock:
            abandoned = self.state is _State.ABANDONED
            self.state = _State.DONE
        return not abandoned

    def deliver(self, outcome: ConvertOutcome[T]) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed: nobody waits any more
            self.loop.call_soon_threadsafe(self._set_result, outcome)

    def _set_result(self, outcome: ConvertOutcome[T]) -> None:
        if not self.future.done():
            self.future.set_result(outcome)

    def give_up(self) -> threading.Thread | None:
        """After a timeout or cancellation: the thread now stuck in this job, if one is."""
        with self.lock:
            if self.state is _State.QUEUED:
                self.state = _State.CANCELLED
            elif self.state is _State.RUNNING:
                self.state = _State.ABANDONED
                return self.thread
            return None


class ConvertRunner(Generic[T]):
    """At most ``workers`` conversions at once, on reused daemon threads."""

    def __init__(self, convert: Callable[[Path], T], *, workers: int, timeout: float) -> None:
        self._convert = convert
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max(1, workers))
        self._jobs: queue.SimpleQueue[_Job[T] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # pool threads waiting for a job and not yet promised one
        self._closing = False
        self._stuck: set[threading.Thread] = set()
        #: Conversions abandoned after the timeout, since start.
        self.abandoned = 0

    @property
    def stuck(self) -> int:
        """Abandoned converter threads that are still running."""
        self._stuck = {t for t in self._stuck if t.is_alive()}
        return len(self._stuck)

    async def run(self, path: Path) -> ConvertOutcome[T]:
        async with self._slots:
            loop = asyncio.get_running_loop()
            job: _Job[T] = _Job(path, loop, loop.create_future())
            self._promise_thread()
            self._jobs.put(job)
            try:
                return await asyncio.wait_for(asyncio.shield(job.future), self._timeout)
            except asyncio.TimeoutError:
                self.abandoned += 1
                thread = self._withdraw(job)
                if thread is None:
                    return ConvertOutcome(timed_out=True)
                self._stuck.add(thread)
                return ConvertOutcome(
                    timed_out=True, stack=_stack_of(thread), converter=converter_running_in(thread)
                )
            except asyncio.CancelledError:
                # Unstarted, no thread runs it; running, its thread leaves the pool
                # when done, as the slot freed now may start a replacement.
                self._withdraw(job)
                raise

    def close(self) -> None:
        """Let the idle threads end; threads still converting end when they finish.

        A later :meth:`run` starts fresh threads.
        """
        with self._lock:
            idle, self._idle = self._idle, 0
            self._closing = True
        for _ in range(idle):
            self._jobs.put(None)

    def _withdraw(self, job: _Job[T]) -> threading.Thread | None:
        """Give up on ``job``; if no thread had taken it, its promised thread is free again.

        Handed back now, not when a thread skips the job: a run() in between
        would otherwise find no idle thread and grow the pool.
        """
        thread = job.give_up()
        if job.state is _State.CANCELLED and not self._back_to_idle():
            self._jobs.put(None)  # closing, and close() did not count this thread
        return thread

    def _promise_thread(self) -> None:
        """Make sure a thread will take the job about to be queued."""
        with self._lock:
            self._closing = False
            if self._idle:
                self._idle -= 1
                return
        threading.Thread(target=self._work, name="convert", daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if not job.begin():  # withdrawn before it started; its promise was handed back
                continue
            threading.current_thread().name = f"convert:{job.path.name}"
            try:
                outcome: ConvertOutcome[T] = ConvertOutcome(value=self._convert(job.path))
            except BaseException as exc:  # noqa: BLE001 - contained and reported per file
                outcome = ConvertOutcome(error=exc)
            if not job.complete():
                return  # abandoned: a replacement has taken this thread's place
            # Idle before the result wakes the caller, or its next run() would
            # find no idle thread and start an extra one.
            stay = self._back_to_idle()
            job.deliver(outcome)
            if not stay:
                return

    def _back_to_idle(self) -> bool:
        """Count a thread as idle again; False if the pool is closing and it should end."""
        with self._lock:
            if self._closing:
                return False
            self._idle += 1
            return True


#: Files of the thread's own machinery: a stuck converter's author needs the stack
#: from the first frame after them, where their code starts.
_MACHINERY = frozenset(
    str(Path(f).resolve())
    for f in (threading.__file__, contextlib.__file__, __file__, _manager_file)
    if f  # a frozen build may have no file names
)


def _stack_of(thread: threading.Thread) -> str | None:
    """The current call stack of a running ``thread`` (None once it ended)."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return None
    frames = traceback.extract_stack(frame)
    start = next(
        (i for i, f in enumerate(frames) if str(Path(f.filename).resolve()) not in _MACHINERY),
        0,
    )
    return "".join(traceback.format_list(frames[start:])).rstrip()
