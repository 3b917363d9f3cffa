"""Real worker process, real files, real stand-in: partial files, restarts, lost events."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests._standin import StandinClient
from tests.e2e._intake_support import (
    COUNT_RESCANS,
    RunProcess,
    write_config,
    write_result,
    wsjf,
)
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e


def test_file_written_slowly_over_3_s_is_converted_once_and_complete(
    tmp_path: Path, standin: StandinClient
) -> None:
    station = tmp_path / "station"
    # ready_after below the pause between chunks would take it half-written:
    # the rule is "unchanged for ready_after", so keep it above the writer's pauses.
    # Rescans every 0.5 s look at the half-written file too, and give a second
    # conversion every chance to happen.
    config = write_config(station, standin, ready_after=0.8, rescan_interval=0.5)
    worker = RunProcess(config, prelude=COUNT_RESCANS).start()
    try:
        data = json.dumps(wsjf("SLOW-1"), indent=2).encode()
        chunks = [data[i : i + len(data) // 6 + 1] for i in range(0, len(data), len(data) // 6 + 1)]
        path = station / "in" / "slow.json"
        started = time.monotonic()
        with open(path, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                handle.flush()
                time.sleep(3.0 / len(chunks))  # the scenario: a slow writer
        assert time.monotonic() - started >= 3.0
        [report] = standin.wait_for_reports(1, timeout=30)
        assert report["sn"] == "SLOW-1" and report["times_received"] == 1
        wait_until(lambda: (station / "in" / "Done" / "slow.json").exists(), 30)
        assert not (station / "in" / "Error").exists(), worker.tail()
        worker.wait_rescans(3)  # the watcher looked at the folder 3 more times
        assert worker.stop() == 0
        [stopped] = [line for line in worker.current_log().splitlines() if "stopped:" in line]
        assert ", 1 converted," in stopped, stopped  # converted once, uploaded once
        assert standin.stats()["accepted"] == 1
    finally:
        worker.kill()


def test_files_created_while_stopped_are_processed_at_next_start(
    tmp_path: Path, standin: StandinClient
) -> None:
    station = tmp_path / "station"
    worker = RunProcess(write_config(station, standin))
    worker.start()
    try:
        write_result(station / "in", "BEFORE-STOP")
        standin.wait_for_reports(1, timeout=30)
        assert worker.stop() == 0
        for n in range(20):
            write_result(station / "in", f"WHILE-STOPPED-{n:02d}")
        worker.start()
        reports = standin.wait_for_reports(21, timeout=60)
        assert all(r["times_received"] == 1 for r in reports)
        wait_until(
            lambda: sorted(p.name for p in (station / "in").iterdir()) == ["Done"],
            30,
            message=lambda: worker.tail(),
        )
        assert worker.stop() == 0
    finally:
        worker.kill()


NO_EVENTS = """
import threading
import pywats_client.services.file_watcher as fw


class _Emitter:
    def __init__(self, thread):
        self.is_alive = thread.is_alive


class _Deaf:
    '''An observer that is alive but never reports an event (as on a busy share).'''

    def __init__(self):
        self.daemon = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._stop.wait, daemon=True)
        self.emitters = set()

    def schedule(self, handler, path, **kwargs):
        self.emitters.add(_Emitter(self._thread))

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()

    def join(self, timeout=None):
        self._thread.join(timeout)

    def is_alive(self):
        return self._thread.is_alive()


fw.Observer = _Deaf
print("test prelude: file events suppressed", flush=True)
"""


def test_files_whose_events_were_lost_are_found_by_the_rescan(
    tmp_path: Path, standin: StandinClient
) -> None:
    station = tmp_path / "station"
    config = write_config(station, standin, rescan_interval=2.0, ready_after=0.3)
    worker = RunProcess(config, prelude=NO_EVENTS + COUNT_RESCANS).start()
    try:
        # the start-up scan is over: only a later rescan can find these files
        wait_until(lambda: worker.rescans() >= 1, 30, message=lambda: worker.tail())
        for n in range(10):
            write_result(station / "in", f"NO-EVENT-{n}")
        reports = standin.wait_for_reports(10, timeout=30)
        assert all(r["times_received"] == 1 for r in reports)
        assert "test prelude: file events suppressed" in worker.log()
        wait_until(lambda: sorted(p.name for p in (station / "in").iterdir()) == ["Done"], 30)
        assert worker.stop() == 0
    finally:
        worker.kill()
