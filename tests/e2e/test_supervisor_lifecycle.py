"""Real supervisor process: single instance, no orphans, graceful stop, locks, bad config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pywats_client.core import ClientConfig, acquire_instance_lock
from tests.e2e._supervisor import (
    SupervisorRun,
    alive,
    clean_env,
    registry,
    station,
    supervisor_runs,
)
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

TOKEN = "dG9rZW4tdGhhdC1tdXN0LW5vdC1sZWFr"


@pytest.fixture
def supervisor_factory() -> Iterator[Callable[..., SupervisorRun]]:
    yield from supervisor_runs()


def test_killed_supervisor_leaves_no_orphans_and_a_new_one_starts_cleanly(
    tmp_path: Path, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    names = ["st-1", "st-2", "st-3"]
    for name in names:
        station(tmp_path, name)
    path = registry(tmp_path, names)
    first = supervisor_factory(path)
    running = first.wait_running(*names)
    workers = [running[n]["pid"] for n in names]
    killed_at = time.monotonic()
    first.kill()  # SIGKILL: no chance to clean up
    wait_until(
        lambda: not any(alive(pid) for pid in workers),
        timeout=10,
        message=lambda: f"workers {[p for p in workers if alive(p)]} to exit",
    )
    outlived = time.monotonic() - killed_at
    assert outlived < 6.0, f"workers outlived the supervisor by {outlived:.1f} s"
    # their logs say why they stopped
    log = (tmp_path / "logs" / "st-1.log").read_text()
    assert "supervisor gone" in log
    # the lock died with the supervisor: a new one starts at once and runs everything
    second = supervisor_factory(path)
    again = second.wait_running(*names)
    assert {again[n]["pid"] for n in names}.isdisjoint(workers)
    assert second.terminate() == 0


def test_second_supervisor_on_the_same_registry_refuses_naming_the_pid(
    tmp_path: Path, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    station(tmp_path, "st-1")
    path = registry(tmp_path, ["st-1"])
    first = supervisor_factory(path)
    first.wait_running("st-1")
    second = subprocess.run(
        [sys.executable, "-m", "pywats_client", "supervise", "--registry", str(path)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 1
    assert f"pid {first.pid}" in second.stderr
    assert "already running" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.proc.poll() is None  # the first one is unharmed
    assert first.instance("st-1")["restarts"] == 0


def test_sigterm_stops_every_worker_gracefully(
    tmp_path: Path, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    for name in ("st-1", "st-2"):
        station(tmp_path, name, api_token=TOKEN, service_address="http://127.0.0.1:9")
    sup = supervisor_factory(registry(tmp_path, ["st-1", "st-2"]))
    running = sup.wait_running("st-1", "st-2")
    workers = [r["pid"] for r in running.values()]
    assert sup.terminate(timeout=30) == 0
    assert not any(alive(pid) for pid in workers)
    status = json.loads((tmp_path / ".pywats" / "status.json").read_text())
    assert status["supervisor"]["exited"] is True
    assert {r["state"] for r in status["instances"]} == {"stopped"}
    for name in ("st-1", "st-2"):
        log = (tmp_path / "logs" / f"{name}.log").read_text()
        assert "stopping (stop requested)" in log and "worker stopped" in log
    # the token never reached logs, status or the console
    for path in [*tmp_path.glob("logs/*"), tmp_path / ".pywats" / "status.json", sup.output]:
        assert TOKEN not in path.read_text(errors="replace"), path


def test_worker_refuses_an_instance_another_process_holds(
    tmp_path: Path, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    config_path = station(tmp_path, "st-1")
    lock = acquire_instance_lock(ClientConfig.load(config_path))
    try:
        sup = supervisor_factory(registry(tmp_path, ["st-1"], restart_max_delay=1.0))
        record = sup.wait(
            lambda i: i.get("st-1") if i.get("st-1", {}).get("last_exit") == 75 else None,
            timeout=45,
            what="st-1 refused (exit 75)",
        )
        assert f"pid {os.getpid()}" in record["last_error"]
        assert record["state"] in ("backoff", "starting", "crash-looping")
    finally:
        lock.release()
    # once the holder is gone, the supervisor's retry gets it running
    sup.wait_running("st-1", timeout=60)


def test_bad_config_is_fatal_for_that_instance_only_until_fixed(
    tmp_path: Path, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    station(tmp_path, "good")
    bad = station(tmp_path, "bad", max_concurrent_uploads=0)
    sup = supervisor_factory(registry(tmp_path, ["good", "bad"]))
    record = sup.wait_state("bad", "fatal", timeout=30)
    assert "max_concurrent_uploads" in record["last_error"]
    assert record["pid"] is None
    sup.wait_running("good")
    sup.wait_status_writes(6)  # the supervisor looked at it 6 more times: no retry
    assert sup.instance("bad")["state"] == "fatal"
    assert sup.instance("bad")["restarts"] == 0  # not retried while the file is unchanged
    station(tmp_path, "bad")  # fixed: the live reload starts it
    sup.wait_running("bad", timeout=30)
    assert bad.exists()


def test_config_error_found_by_the_worker_is_fatal(
    tmp_path: Path, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    config = station(tmp_path, "st-1")
    sup = supervisor_factory(registry(tmp_path, ["st-1"]))
    sup.wait_running("st-1")
    # an edit that breaks the file is not applied: the station keeps running
    config.write_text('{"queue_path": ')
    record = sup.wait(
        lambda i: i["st-1"] if "not applied" in (i["st-1"].get("last_error") or "") else None,
        timeout=20,
        what="the broken edit reported",
    )
    assert record["state"] == "running"
    # a crash now cannot restart with a broken file: fatal, not a crash loop
    os.kill(record["pid"], signal.SIGKILL)
    record = sup.wait_state("st-1", "fatal", timeout=30)
    assert "not valid JSON" in record["last_error"]


def test_instances_sharing_a_queue_folder_are_both_refused(
    tmp_path: Path, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    shared = tmp_path / "shared-queue"
    station(tmp_path, "a", queue_path=str(shared))
    station(tmp_path, "b", queue_path=str(shared))
    station(tmp_path, "c")
    sup = supervisor_factory(registry(tmp_path, ["a", "b", "c"]))
    for name, other in (("a", "b"), ("b", "a")):
        record = sup.wait_state(name, "fatal", timeout=30)
        assert "queue_path" in record["last_error"]
        assert repr(other) in record["last_error"]
    sup.wait_running("c")
    station(tmp_path, "b")  # b gets its own queue: both may run now
    sup.wait_running("b", timeout=30)
    sup.wait_running("a", timeout=30)
