"""Issue 5: with 30% 503s and some 429s, every report arrives exactly once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests._standin import StandinClient
from tests.e2e._queue_common import (
    ids_on_server,
    load,
    new_reports,
    report_id,
    run,
    running_uploader,
    write_config,
)
from tests.helpers import async_wait_until

pytestmark = pytest.mark.e2e

COUNT = 600


def test_flaky_server_gets_every_report_exactly_once(
    standin: StandinClient, tmp_path: Path
) -> None:
    config = load(write_config(tmp_path, standin.url, standin.token, max_concurrent_uploads=5))
    standin.set_faults(status=503, rate=0.3, seed=5)

    async def main() -> None:
        async with running_uploader(config) as (queue, _):
            await asyncio.to_thread(queue.store.enqueue, new_reports(range(COUNT)))
            queue.wake()
            await async_wait_until(
                lambda: queue.uploaded >= COUNT // 3, 60, message="a third uploaded"
            )
            # a burst of 429s: the whole uploader must hold for Retry-After
            await asyncio.to_thread(
                standin.set_faults, status=429, retry_after=1, count=1, paths=["/api/Report/"]
            )

            async def held_for() -> float:
                return float((await queue.get_status())["held_for_s"])

            async def held() -> bool:
                return await held_for() > 0.3

            async def hold_over() -> bool:
                return await held_for() == 0

            await async_wait_until(held, 20, interval=0.01, message="429 hold")
            held_at, remaining = time.monotonic(), await held_for()

            async def settled() -> bool:  # uploads in flight at the 429 have landed by now
                return await held_for() < remaining - 0.3

            async def nearly_over() -> bool:  # read the server once more inside the hold
                return await held_for() < 0.2

            await async_wait_until(settled, 20, interval=0.01, message="0.3 s into the hold")
            accepted = (await asyncio.to_thread(standin.stats))["accepted"]
            await async_wait_until(nearly_over, 20, interval=0.01, message="hold nearly over")
            during = (await asyncio.to_thread(standin.stats))["accepted"] - accepted
            still_held = await held_for() > 0
            # an uploader that ignored the hold would have sent a hundred or so meanwhile
            assert during <= 1 or not still_held, f"{during} uploads landed during a 429 hold"
            await async_wait_until(hold_over, 20, interval=0.01, message="hold over")
            assert time.monotonic() - held_at >= remaining - 0.1
            uploaded = queue.uploaded
            await async_wait_until(lambda: queue.uploaded > uploaded + 5, 20, message="resumed")
            # then a stretch of scattered 429s with short holds
            await asyncio.to_thread(
                standin.set_faults, status=429, rate=0.3, retry_after=0.2, count=10, seed=3
            )

            async def faults_served() -> bool:
                return (await asyncio.to_thread(standin.stats))["faults"] == {}

            await async_wait_until(faults_served, 30, message="the 429s were served")
            await asyncio.to_thread(standin.set_faults, status=503, rate=0.3, seed=9)
            await async_wait_until(lambda: queue.uploaded == COUNT, 90, message=f"{COUNT} uploaded")
            status = await queue.get_status()
            assert status["retried"] > COUNT * 0.15  # the faults really happened
            assert (status["pending"], status["failed"]) == (0, 0)

    run(main())
    stored = standin.wait_for_reports(COUNT)
    assert sorted(ids_on_server(stored)) == sorted(report_id(n) for n in range(COUNT))
    assert {r["times_received"] for r in stored} == {1}
    stats = standin.stats()
    assert stats["faults_injected"] > COUNT * 0.15
