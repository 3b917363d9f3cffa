"""TEST-ONLY environment hooks read by the worker process.

They exist so end-to-end tests and benchmarks can make a real worker misbehave
the way a real bug would (crash at start, hang its event loop) without
patching code inside a spawned process. Never set them in production; a worker
logs a warning whenever one is active.

``PYWATS_TEST_CRASH_AT_START``
    Comma-separated instance names (``*`` = all): the worker exits with code 1
    right after configuring logging, as a crashing worker would.
``PYWATS_TEST_HANG_AFTER``
    Comma-separated ``name:seconds`` (or ``seconds`` for all): after that many
    seconds the worker blocks its asyncio loop forever, so it stops beating
    while its process stays alive (a hung worker).
``PYWATS_TEST_WORKER_RUNTIME``
    Import path of a module providing ``WATSClient`` and
    ``acquire_instance_lock`` to use instead of :mod:`pywats_client.core.client`
    (supervisor tests with a fake client).
``PYWATS_TEST_CLOCK_JUMPS``
    Comma-separated ``name:after:offset`` steps (``*`` = all instances): from
    ``after`` seconds after the worker started (monotonic), the worker's wall
    clock (``time.time``/``time.time_ns``) reads ``offset`` seconds off the real
    time, e.g. ``*:5:3600,*:20:0`` = one hour ahead from 5 s, corrected at 20 s
    (an NTP step). ``time.monotonic`` is left alone. For the torture suite.
``PYWATS_TEST_EMPTY_GRACE``
    Seconds an empty source file is waited for before it goes to the error
    folder (the watcher's ``empty_grace``, 60 s in production), so a test of
    empty inputs fits in a minute.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = [
    "CLOCK_JUMPS_ENV",
    "CRASH_AT_START_ENV",
    "EMPTY_GRACE_ENV",
    "HANG_AFTER_ENV",
    "WORKER_RUNTIME_ENV",
    "TestHooks",
    "install_fake_clock",
]

CRASH_AT_START_ENV = "PYWATS_TEST_CRASH_AT_START"
HANG_AFTER_ENV = "PYWATS_TEST_HANG_AFTER"
WORKER_RUNTIME_ENV = "PYWATS_TEST_WORKER_RUNTIME"
CLOCK_JUMPS_ENV = "PYWATS_TEST_CLOCK_JUMPS"
EMPTY_GRACE_ENV = "PYWATS_TEST_EMPTY_GRACE"

#: (seconds after start, wall-clock offset in seconds from then on), in time order.
ClockSteps = tuple[tuple[float, float], ...]


def _names(value: str) -> set[str]:
    return {part.strip() for part in value.split(",") if part.strip()}


@dataclass(frozen=True)
class TestHooks:
    """The hooks active for one instance (all off in production)."""

    __test__ = False  # not a pytest test class

    crash_at_start: bool = False
    hang_after: float | None = None
    clock_jumps: ClockSteps = ()
    empty_grace: float | None = None

    @property
    def active(self) -> bool:
        return (
            self.crash_at_start
            or self.hang_after is not None
            or bool(self.clock_jumps)
            or self.empty_grace is not None
        )

    def install(self) -> None:
        """Apply the in-process hooks (fake wall clock, empty grace) to this process."""
        if self.clock_jumps:
            install_fake_clock(self.clock_jumps)
        if self.empty_grace is not None:
            from pywats_client.services.file_watcher import FileWatcher

            defaults = FileWatcher.__init__.__kwdefaults__
            assert defaults is not None and "empty_grace" in defaults
            defaults["empty_grace"] = self.empty_grace

    @classmethod
    def from_env(cls, name: str, environ: Mapping[str, str] | None = None) -> TestHooks:
        env = os.environ if environ is None else environ
        crash_names = _names(env.get(CRASH_AT_START_ENV, ""))
        crash = name in crash_names or "*" in crash_names
        hang: float | None = None
        for part in _names(env.get(HANG_AFTER_ENV, "")):
            target, sep, seconds = part.rpartition(":")
            if not sep:
                target, seconds = "*", part
            if target in (name, "*"):
                try:
                    hang = float(seconds)
                except ValueError:
                    continue
        return cls(
            crash_at_start=crash,
            hang_after=hang,
            clock_jumps=_clock_steps(env.get(CLOCK_JUMPS_ENV, ""), name),
            empty_grace=_float_or_none(env.get(EMPTY_GRACE_ENV, "")),
        )


def _float_or_none(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def _clock_steps(value: str, name: str) -> ClockSteps:
    steps: list[tuple[float, float]] = []
    for part in _names(value):
        target, _, rest = part.partition(":")
        after, _, offset = rest.partition(":")
        if target not in (name, "*"):
            continue
        try:
            steps.append((float(after), float(offset)))
        except ValueError:
            continue
    return tuple(sorted(steps))


def install_fake_clock(
    steps: ClockSteps, monotonic: Callable[[], float] = time.monotonic
) -> Callable[[], float]:
    """Make ``time.time``/``time.time_ns`` jump by ``steps``; returns the offset function.

    Offsets are chosen by the monotonic time since this call, so monotonic
    deadlines (what the product must use for intervals) never see a jump.
    """
    start = monotonic()
    real_time, real_time_ns = time.time, time.time_ns

    def offset() -> float:
        elapsed = monotonic() - start
        current = 0.0
        for after, value in steps:
            if elapsed < after:
                break
            current = value
        return current

    def fake_time() -> float:
        return real_time() + offset()

    def fake_time_ns() -> int:
        return real_time_ns() + int(offset() * 1e9)

    time.time = fake_time
    time.time_ns = fake_time_ns
    return offset
