"""Real supervisor, real worker, real upload helper: a kill -9 of either, mid-upload,
loses and doubles nothing, and a helper never outlives its worker."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests._standin import StandinClient
from tests.e2e._supervisor import SupervisorRun, alive, drop, registry, station, supervisor_runs
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

FILES = 600


@pytest.fixture
def supervisor_factory() -> Iterator[Callable[..., SupervisorRun]]:
    yield from supervisor_runs()


def helper_of(sup: SupervisorRun, worker_pid: int, log: Path) -> int | None:
    """The pid of the worker's upload helper, once it runs: the one its status names,
    a child of the worker, whose start the worker logged."""
    pid = (sup.instance("st-1").get("snapshot") or {}).get("upload_helper_pid")
    if pid is None or not log.exists():
        return None
    try:
        child = psutil.Process(pid).ppid() == worker_pid
    except psutil.Error:
        return None
    return pid if child and f"upload helper started (pid {pid})" in log.read_text() else None


def test_kill_of_the_worker_or_of_its_helper_mid_upload_loses_and_doubles_nothing(
    tmp_path: Path, standin: StandinClient, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    standin.set_faults(latency_ms=20)  # uploads in flight when each kill lands
    station(tmp_path, "st-1", standin, upload_helper="always", ready_after=0)
    sup = supervisor_factory(registry(tmp_path, ["st-1"]))
    log = tmp_path / "logs" / "st-1.log"
    worker = sup.wait_running("st-1")["st-1"]["pid"]
    helper = wait_until(lambda: helper_of(sup, worker, log), 60, message="the upload helper")

    # the status names the helper and counts its memory with the worker's (a beat taken
    # while the helper was still importing counted less of it: the next ones count all)
    def counted(instances: dict[str, Any]) -> bool:
        record = instances["st-1"]
        if (record.get("snapshot") or {}).get("upload_helper_pid") != helper:
            return False
        both = psutil.Process(worker).memory_info().rss + psutil.Process(helper).memory_info().rss
        return bool(record["rss"] > 0.8 * both)

    sup.wait(counted, 30, "the helper in the status, its memory in the station's")
    for n in range(FILES):
        drop(tmp_path / "st-1" / "in", f"UH-{n:04d}")

    # 1. the worker dies while its helper uploads: the helper dies with it at once
    wait_until(lambda: len(standin.reports()) >= 100, 60, message="uploads under way")
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: not alive(helper), 10, message=f"helper {helper} ending with its worker")
    worker = sup.wait(
        lambda i: i["st-1"]["pid"] if i["st-1"].get("pid") not in (None, worker) else None,
        60,
        "a new worker",
    )
    helper = wait_until(lambda: helper_of(sup, worker, log), 60, message="the new helper")

    # 2. the helper dies mid-upload: its worker sends the rest itself
    at_kill = len(standin.reports())
    wait_until(lambda: len(standin.reports()) >= at_kill + 50, 60, message="uploads resumed")
    os.kill(helper, signal.SIGKILL)

    stored = standin.wait_for_reports(FILES, timeout=120)
    assert sorted(r["sn"] for r in stored) == [f"UH-{n:04d}" for n in range(FILES)]
    assert sup.instance("st-1")["pid"] == worker  # the helper's death cost no restart
    assert list((tmp_path / "st-1" / "in").glob("*.json")) == []
    wait_until(
        lambda: not any((tmp_path / "st-1" / "queue" / "pending").iterdir()),
        30,
        message="pending/ empty",
    )
    text = log.read_text()
    assert "exit code -9" in text and "nothing is lost" in text
