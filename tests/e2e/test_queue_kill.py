"""Issue 5: SIGKILL at random points while queueing and uploading loses and doubles nothing.

With the upload helper, each kill also lands while the helper starts or
uploads, and the helper must die with its worker: none outlives a kill.
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pywats_client._fsutil import TEMP_SUFFIX
from tests._standin import StandinClient
from tests.e2e._queue_common import ids_on_server, make_report, report_id, write_config
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

COUNT = 1000
KILLS = 20
DRIVER = Path(__file__).with_name("_queue_driver.py")


def start_driver(
    config: Path, sources: Path, ready: Path, helper: bool = False
) -> subprocess.Popen[bytes]:
    ready.unlink(missing_ok=True)
    return subprocess.Popen(
        [
            sys.executable,
            str(DRIVER),
            "--config",
            str(config),
            "--sources",
            str(sources),
            "--ready",
            str(ready),
            *(["--helper"] if helper else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("helper", [False, True], ids=["in-process", "upload-helper"])
def test_random_kills_lose_nothing_and_double_nothing(
    standin: StandinClient, tmp_path: Path, helper: bool
) -> None:
    config = write_config(
        tmp_path / "station",
        standin.url,
        standin.token,
        upload_helper="always" if helper else "never",
    )
    sources = tmp_path / "sources"
    sources.mkdir()
    for n in range(COUNT):
        (sources / f"unit{n:05d}.json").write_text(json.dumps(make_report(n)))
    # slow answers keep a backlog in flight, and some 503s exercise the retry rewrites
    standin.set_faults(status=503, rate=0.1, latency_ms=30, seed=11)
    ready = tmp_path / "ready"
    rng = random.Random(20260302)
    kills = 0
    helpers: set[int] = set()
    started = time.monotonic()
    while kills < KILLS:
        assert time.monotonic() - started < 150, f"only {kills} kills"
        driver = start_driver(config, sources, ready, helper)
        wait_until(
            lambda d=driver: ready.exists() or d.poll() is not None, 60, message="driver ready"
        )
        time.sleep(rng.uniform(0.0, 0.6))  # the random point to kill at
        if driver.poll() is None:
            with contextlib.suppress(psutil.Error):
                helpers.update(c.pid for c in psutil.Process(driver.pid).children(recursive=True))
            driver.kill()  # SIGKILL on POSIX, TerminateProcess on Windows
            kills += 1
        _, err = driver.communicate(timeout=30)
        if driver.returncode == 0:
            break  # finished before it could be killed: nothing left to interrupt
        assert driver.returncode == -9 or sys.platform == "win32", err.decode()
    assert kills >= KILLS, f"the work ended after only {kills} kills; make it bigger"
    if helper:
        assert helpers, "no kill landed while an upload helper ran"
        wait_until(lambda: all(_gone(p) for p in helpers), 30, message="helpers died too")
    mid = len(standin.reports())
    assert 0 < mid < COUNT, "kills must land while uploading"

    standin.set_faults(status=503, rate=0.1, seed=12)
    final = start_driver(config, sources, ready, helper)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()

    stored = standin.wait_for_reports(COUNT)
    ids = ids_on_server(stored)
    assert len(ids) == len(set(ids)) == COUNT
    assert set(ids) == {report_id(n) for n in range(COUNT)}
    queue = tmp_path / "station" / "queue"
    assert list(sources.iterdir()) == []
    assert list((queue / "pending").iterdir()) == []
    assert list((queue / "failed").iterdir()) == []
    assert list((queue / "quarantine").iterdir()) == []  # no kill left a corrupt file
    assert list((queue / "tmp").iterdir()) == []
    assert [p for p in queue.rglob(f"*{TEMP_SUFFIX}")] == []
    resent = sum(r["times_received"] - 1 for r in stored)
    print(f"{kills} kills; {resent} reports resent after a kill (same id, replaced)")
