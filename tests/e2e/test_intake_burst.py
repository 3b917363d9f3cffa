"""5,000 files dropped at once into two watch folders: each reaches the server exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._standin import StandinClient
from tests.e2e._intake_support import RunProcess, write_config, write_result
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PER_FOLDER = 2500


def test_burst_into_two_folders_reaches_the_server_exactly_once(
    tmp_path: Path, standin: StandinClient
) -> None:
    station = tmp_path / "station"
    config = write_config(station, standin, watch=["line-a", "line-b"])
    worker = RunProcess(config).start()
    try:
        for folder in ("line-a", "line-b"):
            for n in range(PER_FOLDER):
                write_result(station / folder, f"{folder}-{n:05d}")
        total = 2 * PER_FOLDER

        reports = standin.wait_for_reports(total, timeout=150)
        assert len(reports) == total
        doubled = [r for r in reports if r["times_received"] != 1]
        assert doubled == [], f"{len(doubled)} reports received more than once"
        expected = {f"{f}-{n:05d}" for f in ("line-a", "line-b") for n in range(PER_FOLDER)}
        assert {r["sn"] for r in reports} == expected

        def sources_done() -> bool:
            return all(
                sorted(p.name for p in (station / f).iterdir()) == ["Done"]
                and len(list((station / f / "Done").iterdir())) == PER_FOLDER
                for f in ("line-a", "line-b")
            )

        wait_until(sources_done, 60, message=lambda: f"sources in Done; log:\n{worker.tail()}")
        assert worker.stop() == 0, worker.tail()
    finally:
        worker.kill()
    queue = station / "queue"
    assert list((queue / "pending").iterdir()) == []
    assert list((queue / "failed").iterdir()) == []
    assert list((queue / "tmp").iterdir()) == []
    assert list((queue / "intake").glob("batch-*")) == []
    assert not (station / "line-a" / "Error").exists()
    assert not (station / "line-b" / "Error").exists()
    stats = standin.stats()
    assert (stats["accepted"], stats["rejected"]) == (2 * PER_FOLDER, 0)
