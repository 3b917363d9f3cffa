"""Torture CI subset: the queue's disk fills up; corrupt and truncated files appear in queues."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._torture import run_checked
from tests._torture._disk import SmallDisk

pytestmark = pytest.mark.e2e


def test_disk_full_under_a_queue_holds_intake_and_loses_nothing(tmp_path: Path) -> None:
    probe = SmallDisk(tmp_path / "probe", size_mb=1).mount()
    available, reason = probe.available, probe.reason
    probe.unmount()
    if not available:
        pytest.skip(f"no small file system can be mounted here: {reason}")
    result = run_checked(
        tmp_path / "run", "disk-full", seed=31, episode=(3.0, 5.0), calm=(1.0, 2.0)
    )
    assert result.disk in ("tmpfs", "loop")
    assert result.faults["disk-full"] >= 1
    log = (tmp_path / "run" / "logs" / "st1.log").read_text(errors="replace")
    assert "No space left on device" in log  # the product really met ENOSPC
    assert "restart required: intake stopped" not in log  # ... and held instead of crashing
    assert result.audit.accepted == result.audit.valid > 20


def test_corrupt_and_truncated_queue_files_are_quarantined(tmp_path: Path) -> None:
    result = run_checked(tmp_path, "corrupt-queue", seed=32, instant_gap=(0.5, 1.5))
    assert result.audit.quarantined == result.faults["corrupt-queue"] >= 4
    assert result.audit.accepted == result.audit.valid
