"""Issue 5: reports queued while the server is down all arrive once it is back, once each."""

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

COUNT = 1000


def test_backlog_from_an_outage_is_delivered_exactly_once(
    standin: StandinClient, tmp_path: Path
) -> None:
    config = load(write_config(tmp_path, standin.url, standin.token))
    standin.set_faults(down=True)

    async def main() -> None:
        async with running_uploader(config) as (queue, conn):
            await async_wait_until(
                lambda: conn.state == "disconnected", 20, message="connection seen as down"
            )
            assert "closed the connection" in (conn.last_error or "")
            for start in range(0, COUNT, 100):  # as the intake would, file by file batches
                await asyncio.to_thread(queue.store.enqueue, new_reports(range(start, start + 100)))
                queue.wake()
            status = await queue.get_status()
            assert status["pending"] == COUNT
            assert status["state"] == "disconnected"
            # the uploader must sit still, not burn attempts, while the connection
            # service keeps knocking: wait for 3 more of its checks to reach the server
            checks = await asyncio.to_thread(lambda: standin.stats()["requests"])
            await async_wait_until(
                lambda: asyncio.to_thread(lambda: standin.stats()["requests"] >= checks + 3),
                30,
                message="3 more connection checks",
            )
            for item in list(queue.store.iter_items("pending"))[:50]:
                assert item.envelope.attempts == 0

            back = time.monotonic()
            await asyncio.to_thread(standin.clear_faults)
            await async_wait_until(
                lambda: queue.uploaded == COUNT, 90, message=f"{COUNT} reports uploaded"
            )
            took = time.monotonic() - back
            status = await queue.get_status()
            assert (status["pending"], status["failed"], status["in_flight"]) == (0, 0, 0)
            print(f"backlog of {COUNT} drained in {took:.1f} s after the server came back")

    run(main())
    stored = standin.wait_for_reports(COUNT)
    assert sorted(ids_on_server(stored)) == sorted(report_id(n) for n in range(COUNT))
    assert {r["times_received"] for r in stored} == {1}
    assert list((tmp_path / "queue" / "pending").iterdir()) == []
