"""Test helpers shared by every test module: poll a condition with a deadline.

Never sleep-and-hope: wait for the condition the test needs, with a deadline
generous enough for a busy 2-core CI machine, and fail with a message that
says what was awaited and what was last seen.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

__all__ = [
    "StopWaiting",
    "async_wait_until",
    "refuse_reading",
    "rescanned",
    "run_cli",
    "wait_until",
]


class StopWaiting(AssertionError):
    """Raised by a predicate when the awaited condition can no longer come true.

    (The process that was to bring it about has exited, say.) The wait fails at
    once with this error instead of treating it as "not yet" until the deadline.
    """


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 15.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Return ``predicate()``'s first truthy value; AssertionError after ``timeout`` s.

    Exceptions raised by the predicate count as "not yet" until the deadline,
    then the last one is chained to the failure; :class:`StopWaiting` fails at once.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_error = None
        except StopWaiting:
            raise
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout} s waiting for {text}") from last_error
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 15.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition",
) -> T:
    """:func:`wait_until` for asyncio tests; ``predicate`` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
            value = await value  # type: ignore[misc]
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout} s waiting for {text}")
        await asyncio.sleep(interval)


async def rescanned(watcher: Any) -> None:
    """Ask a ``FileWatcher`` for a full rescan and wait until it is done."""
    seen = watcher.rescans
    watcher.request_rescan()
    await async_wait_until(lambda: watcher.rescans > seen, 15, message="one more rescan")


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 60.0, **env: str
) -> subprocess.CompletedProcess[str]:
    """``pywats-client ARGS`` in a real process whose output is not a terminal.

    ``env`` adds variables (``COLUMNS="80"``, ``PYTHONIOENCODING="cp1252"``...).
    """
    return subprocess.run(
        [sys.executable, "-m", "pywats_client", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
        timeout=timeout,
        check=False,
    )


def installed_script() -> Path | None:
    """The installed ``pywats-client`` script (as a user runs it), if there is one."""
    script = Path(sys.executable).with_name(
        "pywats-client.exe" if sys.platform == "win32" else "pywats-client"
    )
    return script if script.is_file() else None


def run_fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter (what a new process imports and starts);
    returns its stdout, and fails with its stderr if the code failed."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def refuse_reading(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make ``path.read_text()`` fail as another user's file would (tests run as root)."""
    original = Path.read_text

    def refuse(self: Path, *args: Any, **kwargs: Any) -> str:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refuse)
