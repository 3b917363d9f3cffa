"""Run converters in threads with a timeout, abandoning the ones that hang.

A thread cannot be killed, so a converter past ``converter_timeout`` is
*abandoned*: the caller gets a timeout result and goes on, the thread keeps
running as a daemon (it never blocks process exit, unlike a
``ThreadPoolExecutor`` worker). Several stuck threads mean the process should
be restarted; :attr:`ConvertRunner.stuck` says how many are still alive.
The timeout outcome carries the stuck thread's stack, so the error file says
which converter hung and where.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

__all__ = ["ConvertOutcome", "ConvertRunner"]

T = TypeVar("T")


@dataclass(frozen=True)
class ConvertOutcome(Generic[T]):
    """Exactly one of ``value``, ``error`` or ``timed_out`` is set.

    ``stack``: with ``timed_out``, where the abandoned converter thread was.
    """

    value: T | None = None
    error: BaseException | None = None
    timed_out: bool = False
    stack: str | None = None


class ConvertRunner(Generic[T]):
    """At most ``workers`` conversions at once, each in its own daemon thread."""

    def __init__(self, convert: Callable[[Path], T], *, workers: int, timeout: float) -> None:
        self._convert = convert
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max(1, workers))
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
            future: asyncio.Future[ConvertOutcome[T]] = loop.create_future()

            def deliver(outcome: ConvertOutcome[T]) -> None:
                if not future.done():
                    future.set_result(outcome)

            def target() -> None:
                try:
                    outcome: ConvertOutcome[T] = ConvertOutcome(value=self._convert(path))
                except BaseException as exc:  # noqa: BLE001 - contained and reported per file
                    outcome = ConvertOutcome(error=exc)
                with contextlib.suppress(RuntimeError):  # loop closed: nobody waits any more
                    loop.call_soon_threadsafe(deliver, outcome)

            thread = threading.Thread(target=target, name=f"convert:{path.name}", daemon=True)
            thread.start()
            try:
                return await asyncio.wait_for(asyncio.shield(future), self._timeout)
            except asyncio.TimeoutError:
                self.abandoned += 1
                self._stuck.add(thread)
                return ConvertOutcome(timed_out=True, stack=_stack_of(thread))


def _stack_of(thread: threading.Thread) -> str | None:
    """The current call stack of a running ``thread`` (None once it ended)."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return None
    return "".join(traceback.format_stack(frame)).rstrip()
