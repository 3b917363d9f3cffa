"""Real supervisor, real workers: killed, hung and always-crashing workers are recovered."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests._standin import StandinClient
from tests.e2e._supervisor import (
    FAST_SUPERVISOR,
    SupervisorRun,
    alive,
    drop,
    registry,
    station,
    supervisor_runs,
)
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def supervisor_factory() -> Iterator[Callable[..., SupervisorRun]]:
    yield from supervisor_runs()


def test_killed_worker_heartbeats_again_within_2s_while_others_keep_uploading(
    tmp_path: Path, standin: StandinClient, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    for name in ("st-1", "st-2"):
        station(tmp_path, name, standin)
    sup = supervisor_factory(registry(tmp_path, ["st-1", "st-2"]))
    first = sup.wait_running("st-1", "st-2")
    # let st-1 run stably so its restart is immediate (restart policy), as in production
    stable = FAST_SUPERVISOR["stable_after"] + 0.5
    sup.wait(lambda i: (i["st-1"].get("uptime_s") or 0) >= stable, 30, f"st-1 up {stable} s")
    assert sup.instance("st-1")["pid"] == first["st-1"]["pid"]

    # st-2 keeps receiving files the whole time
    stop_dropping = threading.Event()
    dropped: list[str] = []

    def feed() -> None:
        i = 0
        while not stop_dropping.is_set():
            sn = f"ST2-{i:04d}"
            drop(tmp_path / "st-2" / "in", sn)
            dropped.append(sn)
            i += 1
            stop_dropping.wait(0.1)  # the scenario: a steady file rate

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        wait_until(lambda: len(standin.reports()) >= 3, 30, message="st-2 uploading")
        old_pid = first["st-1"]["pid"]
        st2_pid = first["st-2"]["pid"]
        killed_at = time.time()
        os.kill(old_pid, signal.SIGKILL)
        record = sup.wait(
            lambda i: (
                i["st-1"]
                if i["st-1"].get("pid") not in (None, old_pid)
                and (i["st-1"].get("last_heartbeat_at") or 0) > killed_at
                else None
            ),
            timeout=10,
            what="a new st-1 worker heartbeating",
        )
        latency = record["last_heartbeat_at"] - killed_at
        assert latency < 2.0, f"new worker's first heartbeat {latency:.2f} s after kill -9"
        assert record["restarts"] == 1
        assert "SIGKILL" in record["last_error"]
        received_before = len(standin.reports())
        wait_until(
            lambda: len(standin.reports()) >= received_before + 3,
            30,
            message="st-2 uploading on",
        )
    finally:
        stop_dropping.set()
        feeder.join()
    # st-2 was never touched and kept uploading during st-1's restart
    after = sup.instance("st-2")
    assert after["pid"] == st2_pid and after["restarts"] == 0
    assert len(standin.reports()) > received_before
    reports = standin.wait_for_reports(len(dropped), timeout=60)
    assert {r["sn"] for r in reports} >= set(dropped)
    assert sup.wait_running("st-1")


def test_hung_worker_is_detected_and_restarted(
    tmp_path: Path, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    for name in ("st-1", "st-2"):
        station(tmp_path, name)
    path = registry(tmp_path, ["st-1", "st-2"], heartbeat_timeout=2.0, stop_timeout=1.0)
    sup = supervisor_factory(path, PYWATS_TEST_HANG_AFTER="st-1:1.5")
    first = sup.wait_running("st-1", "st-2")
    hung_pid = first["st-1"]["pid"]
    record = sup.wait(
        lambda i: i["st-1"] if i["st-1"].get("restarts", 0) >= 1 else None,
        timeout=30,
        what="st-1 restarted after hanging",
    )
    assert "hung" in record["last_error"]
    # a GUI shows since when: the hang was seen within this test
    assert record["last_error_at"] is not None and 0 <= time.time() - record["last_error_at"] < 60
    wait_until(lambda: not alive(hung_pid), 15, message="the hung worker gone")
    assert record["pid"] != hung_pid
    # the healthy instance was left alone
    assert sup.instance("st-2")["pid"] == first["st-2"]["pid"]
    assert sup.instance("st-2")["restarts"] == 0


def test_always_crashing_worker_is_crash_looping_and_costs_little_cpu(
    tmp_path: Path, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    for name in ("st-1", "st-2"):
        station(tmp_path, name)
    path = registry(
        tmp_path,
        ["st-1", "st-2"],
        restart_initial_delay=0.1,
        restart_max_delay=3.0,
        crash_loop_exits=4,
        crash_loop_window=60.0,
    )
    sup = supervisor_factory(path, PYWATS_TEST_CRASH_AT_START="st-1")
    record = sup.wait_state("st-1", "crash-looping", timeout=45)
    assert "test hook" in record["last_error"]
    assert record["next_restart_at"] is not None
    sup.wait_running("st-2")
    # keeps retrying at the cap, and the whole tree stays cheap meanwhile
    restarts = record["restarts"]
    supervisor = psutil.Process(sup.pid)
    before = supervisor.cpu_times()
    started = time.monotonic()
    sup.wait(
        lambda i: i["st-1"]["restarts"] >= restarts + 2,
        timeout=30,
        what="st-1 retried at the cap",
    )
    time.sleep(max(0.0, 6.0 - (time.monotonic() - started)))  # a CPU sample of 6 s at least
    after = supervisor.cpu_times()
    elapsed = time.monotonic() - started
    cpu = (after.user + after.system - before.user - before.system) / elapsed
    assert cpu < 0.05, f"supervisor used {cpu:.1%} CPU while st-1 crash-loops"
    assert sup.instance("st-1")["state"] in ("crash-looping",)
    assert sup.instance("st-2")["restarts"] == 0
