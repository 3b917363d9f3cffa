"""The shared wait helpers: a value when the condition holds, a clear failure when not."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.helpers import StopWaiting, async_wait_until, wait_until


def test_returns_the_first_truthy_value() -> None:
    calls = iter([None, 0, "ready"])
    assert wait_until(lambda: next(calls), timeout=5, interval=0.001) == "ready"


def test_timeout_names_what_was_awaited_and_chains_the_last_error() -> None:
    def broken() -> bool:
        raise KeyError("status.json not written yet")

    with pytest.raises(AssertionError, match="waiting for the status file") as info:
        wait_until(broken, timeout=0.05, interval=0.001, message=lambda: "the status file")
    assert isinstance(info.value.__cause__, KeyError)


def test_stop_waiting_fails_at_once_not_at_the_deadline() -> None:
    began = time.monotonic()

    def gone() -> bool:
        raise StopWaiting("supervisor exited 1")

    with pytest.raises(StopWaiting, match="supervisor exited 1"):
        wait_until(gone, timeout=30, interval=0.001)
    assert time.monotonic() - began < 10  # the deadline is 30 s away


def test_async_wait_until_awaits_coroutine_predicates() -> None:
    seen: list[int] = []

    async def grows() -> int | None:
        seen.append(1)
        return len(seen) if len(seen) >= 3 else None

    assert asyncio.run(async_wait_until(grows, timeout=5, interval=0.001)) == 3
