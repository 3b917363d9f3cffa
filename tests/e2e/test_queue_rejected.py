"""Issue 5: a 400 lands in failed/ with the server's reason; `queue requeue` brings it back."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests._standin import StandinClient
from tests.e2e._queue_common import (
    load,
    new_reports,
    report_id,
    run,
    running_uploader,
    write_config,
)
from tests.helpers import async_wait_until

pytestmark = pytest.mark.e2e

REASON = "SN SN0000001 is not valid for part PSU-200"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pywats_client", "queue", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_rejected_report_is_parked_with_reason_and_requeued_by_the_cli(
    standin: StandinClient, tmp_path: Path
) -> None:
    config_file = write_config(tmp_path, standin.url, standin.token)
    config = load(config_file)
    standin.set_faults(status=400, message=REASON, count=1, paths=["/api/Report/"])

    async def main() -> None:
        async with running_uploader(config) as (queue, _):
            await asyncio.to_thread(queue.store.enqueue, new_reports(range(1, 4)))
            queue.wake()
            await async_wait_until(
                lambda: queue.uploaded == 2 and queue.rejected == 1,
                30,
                message="2 accepted, 1 rejected",
            )
            status = await queue.get_status()
            assert (status["pending"], status["failed"]) == (0, 1)

            listed = await asyncio.to_thread(
                cli, "list", "--config", str(config_file), "--state", "failed", "--json"
            )
            assert listed.returncode == 0, listed.stderr
            (failed,) = json.loads(listed.stdout)["reports"]
            assert REASON in failed["last_error"]
            assert failed["last_status"] == 400
            rejected_id = failed["id"]
            assert standin.report(rejected_id) is None

            # the operator fixed the cause on the server side; the worker keeps running
            requeued = await asyncio.to_thread(
                cli, "requeue", "--config", str(config_file), rejected_id
            )
            assert requeued.returncode == 0, requeued.stderr
            assert rejected_id in requeued.stdout
            await async_wait_until(lambda: queue.uploaded == 3, 30, message="requeued upload")
            status = await queue.get_status()
            assert (status["pending"], status["failed"]) == (0, 0)

    run(main())
    stored = standin.wait_for_reports(3)
    assert sorted(r["id"] for r in stored) == sorted(report_id(n) for n in range(1, 4))
    assert {r["times_received"] for r in stored} == {1}
