"""Torture CI subset: SIGKILL of workers and of the supervisor while files stream in.

Each test is a short torture run (tests/_torture, the engine of
``bench/torture.py``) ending in the full audit: every valid file accepted once,
no temp files, no orphans, no token in any file, owner-only queue files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._torture import run_checked

pytestmark = pytest.mark.e2e


def test_random_worker_kills_lose_and_double_nothing(tmp_path: Path) -> None:
    result = run_checked(tmp_path, "kill-worker", seed=11, instant_gap=(1.0, 2.5))
    assert result.kills["kill-worker"] >= 3
    assert result.audit.accepted == result.audit.valid > 20


def test_supervisor_kills_and_restarts_lose_nothing_and_leave_no_orphans(
    tmp_path: Path,
) -> None:
    result = run_checked(tmp_path, "kill-supervisor", seed=12, instant_gap=(2.5, 4.0))
    assert result.kills["kill-supervisor"] >= 2
    assert result.audit.accepted == result.audit.valid > 20
    assert len(list(tmp_path.glob("supervise-*.out"))) == result.kills["kill-supervisor"] + 1
