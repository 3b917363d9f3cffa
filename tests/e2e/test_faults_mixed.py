"""Torture CI subset: every fault kind at once, briefly (bench/torture.py does it for minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._torture import ALL_KINDS, run_checked

pytestmark = pytest.mark.e2e


def test_all_faults_mixed(tmp_path: Path) -> None:
    result = run_checked(
        tmp_path,
        "all",
        seed=61,
        seconds=20.0,
        drain_timeout=90.0,  # a deadline: only a run that does not settle waits it out
        episode=(2.0, 4.0),
        calm=(0.5, 1.0),
        instant_gap=(1.0, 2.5),
    )
    assert result.audit.lost == result.audit.duplicated == result.audit.stuck == 0
    injected = {kind for kind, count in result.faults.items() if count}
    assert len(injected) >= len(ALL_KINDS) - 3  # a 20 s run reaches most kinds
