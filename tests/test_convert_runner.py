"""ConvertRunner: outcomes, bounded concurrency, reused threads, abandoning hung converters."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from pywats_client.services._convert_runner import ConvertRunner
from tests.helpers import async_wait_until, wait_until


def _convert_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("convert")]


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> None:
    wait_until(lambda: not _convert_threads(), message="converter threads of earlier tests to end")


def test_value_and_error_outcomes() -> None:
    def convert(path: Path) -> str:
        if path.name == "bad":
            raise ValueError("bad input in bad")
        return path.name.upper()

    async def main() -> None:
        runner = ConvertRunner(convert, workers=2, timeout=30)
        ok, bad = await asyncio.gather(runner.run(Path("ok")), runner.run(Path("bad")))
        runner.close()
        assert ok.value == "OK" and ok.error is None and not ok.timed_out
        assert isinstance(bad.error, ValueError) and bad.value is None

    asyncio.run(main())


def test_threads_are_reused_and_concurrency_is_bounded() -> None:
    lock = threading.Lock()
    running = 0
    most = 0
    seen: set[threading.Thread] = set()  # the objects, so a reused ident cannot hide a new thread

    def convert(path: Path) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            seen.add(threading.current_thread())
        try:
            return sum(range(20_000))  # a little work so conversions overlap
        finally:
            with lock:
                running -= 1

    async def main() -> None:
        runner = ConvertRunner(convert, workers=3, timeout=30)
        for _ in range(5):
            outcomes = await asyncio.gather(*(runner.run(Path(f"f{i}")) for i in range(40)))
            assert all(o.value == sum(range(20_000)) for o in outcomes)
        runner.close()

    asyncio.run(main())
    assert most <= 3
    assert len(seen) <= 3, f"200 conversions used {len(seen)} threads; expected the pool of 3"
    wait_until(lambda: not _convert_threads(), message="idle pool threads to end after close()")


def test_hung_converter_is_abandoned_and_replaced() -> None:
    release = threading.Event()

    def convert(path: Path) -> str:
        if path.name == "hang":
            release.wait()
            return "late"
        return "ok"

    async def main() -> None:
        runner = ConvertRunner(convert, workers=1, timeout=0.5)
        hung = await runner.run(Path("hang"))
        assert hung.timed_out and hung.value is None
        assert hung.stack is not None and "release.wait()" in hung.stack
        # from the converter's own frame on: the runner's thread machinery is left out
        assert hung.stack.lstrip().startswith(f'File "{__file__}"'), hung.stack
        assert "threading.py" not in hung.stack.split("release.wait()")[0]
        assert runner.abandoned == 1 and runner.stuck == 1
        # the one slot is free again and a new thread takes the next file
        after = await runner.run(Path("next"))
        assert after.value == "ok"
        release.set()
        wait_until(lambda: runner.stuck == 0, message="the abandoned thread to end")
        runner.close()

    asyncio.run(main())
    wait_until(lambda: not _convert_threads(), message="all converter threads to end")


def test_timeouts_before_or_during_the_conversion_leave_no_threads_behind() -> None:
    # A zero timeout gives up before a thread took the job or while it runs,
    # whichever the scheduler makes happen; neither may leak a thread.
    def convert(path: Path) -> str:
        return path.name

    async def main() -> None:
        runner = ConvertRunner(convert, workers=2, timeout=0)
        outcomes = await asyncio.gather(*(runner.run(Path(f"f{i}")) for i in range(50)))
        assert all(o.timed_out or o.value == f"f{i}" for i, o in enumerate(outcomes))
        wait_until(lambda: runner.stuck == 0, message="abandoned threads to end")
        ok = ConvertRunner(convert, workers=2, timeout=30)
        assert (await ok.run(Path("x"))).value == "x"
        ok.close()
        runner.close()

    asyncio.run(main())
    wait_until(lambda: not _convert_threads(), message="all converter threads to end")


def test_run_after_close_starts_fresh_threads() -> None:
    async def main() -> None:
        runner = ConvertRunner(lambda p: p.name, workers=1, timeout=30)
        assert (await runner.run(Path("a"))).value == "a"
        runner.close()
        wait_until(lambda: not _convert_threads(), message="the idle thread to end")
        assert (await runner.run(Path("b"))).value == "b"
        runner.close()

    asyncio.run(main())


def test_cancelled_run_withdraws_its_job_and_the_pool_does_not_grow() -> None:
    release = threading.Event()
    calls: list[str] = []

    def convert(path: Path) -> str:
        calls.append(path.name)
        if path.name == "slow":
            release.wait()
        return path.name

    async def main() -> None:
        runner = ConvertRunner(convert, workers=1, timeout=30)
        slow = asyncio.ensure_future(runner.run(Path("slow")))
        await async_wait_until(lambda: "slow" in calls, message="the slow conversion to start")
        slow.cancel()
        # its slot is free: the next file gets a new thread while the slow one runs on
        assert (await runner.run(Path("next"))).value == "next"
        release.set()
        wait_until(
            lambda: len(_convert_threads()) == 1,
            message=lambda: f"the pool of 1 to shrink back, has {len(_convert_threads())}",
        )
        # cancelled before a thread took it (or while converting): never more threads
        for i in range(100):
            queued = asyncio.ensure_future(runner.run(Path(f"q{i}")))
            await asyncio.sleep(0)
            queued.cancel()
        assert (await runner.run(Path("last"))).value == "last"
        wait_until(
            lambda: len(_convert_threads()) <= 1,
            message=lambda: f"at most the pool of 1 left, has {len(_convert_threads())}",
        )
        runner.close()

    asyncio.run(main())
    wait_until(lambda: not _convert_threads(), message="all converter threads to end")
