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
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "CRASH_AT_START_ENV",
    "HANG_AFTER_ENV",
    "WORKER_RUNTIME_ENV",
    "TestHooks",
]

CRASH_AT_START_ENV = "PYWATS_TEST_CRASH_AT_START"
HANG_AFTER_ENV = "PYWATS_TEST_HANG_AFTER"
WORKER_RUNTIME_ENV = "PYWATS_TEST_WORKER_RUNTIME"


def _names(value: str) -> set[str]:
    return {part.strip() for part in value.split(",") if part.strip()}


@dataclass(frozen=True)
class TestHooks:
    """The hooks active for one instance (all off in production)."""

    __test__ = False  # not a pytest test class

    crash_at_start: bool = False
    hang_after: float | None = None

    @property
    def active(self) -> bool:
        return self.crash_at_start or self.hang_after is not None

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
        return cls(crash_at_start=crash, hang_after=hang)
