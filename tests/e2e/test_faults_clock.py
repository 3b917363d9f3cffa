"""Torture CI subset: the workers' wall clocks jump forwards and back (monotonic time does not)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._torture import run_checked

pytestmark = pytest.mark.e2e


def test_wall_clock_jumps_lose_and_stall_nothing(tmp_path: Path) -> None:
    result = run_checked(tmp_path, "clock", seed=51, clock_every=(1.5, 3.0))
    assert result.faults["clock"] >= 3
    log = (tmp_path / "logs" / "st1.log").read_text(errors="replace")
    assert "clock_jumps=((" in log  # the worker announced the active test hook
    assert result.audit.accepted == result.audit.valid > 20
