"""Torture CI subset: the server goes down, fails, throttles, rejects, is slow, refuses the token.

Each test is a short torture run with one fault kind, ending in the full audit
(see tests/_torture/_audit.py); the checks here prove the fault really hit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._torture import run_checked

pytestmark = pytest.mark.e2e

#: Short episodes so several happen in a 12 s run.
EPISODES = {"episode": (2.0, 4.0), "calm": (0.5, 1.5)}


def test_server_down_then_back(tmp_path: Path) -> None:
    result = run_checked(tmp_path, "down", seed=21, **EPISODES)
    assert result.faults["down"] >= 2
    assert result.audit.accepted == result.audit.valid > 20


def test_server_answers_503_to_30_percent(tmp_path: Path) -> None:
    result = run_checked(tmp_path, "503", seed=22, **EPISODES)
    assert result.server_stats["faults_injected"] > 0
    assert result.audit.accepted == result.audit.valid


def test_server_throttles_with_429_and_retry_after(tmp_path: Path) -> None:
    result = run_checked(tmp_path, "429", seed=23, **EPISODES)
    assert result.server_stats["faults_injected"] > 0
    assert result.audit.accepted == result.audit.valid


def test_rejected_reports_wait_in_failed_then_arrive_after_requeue(tmp_path: Path) -> None:
    result = run_checked(tmp_path, "400", seed=24, **EPISODES)
    assert result.requeued >= 1  # parked with the server's reason, then requeued and accepted
    assert result.audit.accepted == result.audit.valid


def test_server_slower_than_request_timeout(tmp_path: Path) -> None:
    result = run_checked(tmp_path, "slow", seed=25, **EPISODES)
    assert result.server_stats["delayed"] > 0
    assert result.audit.accepted == result.audit.valid


def test_wrong_token_pauses_uploads_and_the_fixed_token_lets_them_flow(tmp_path: Path) -> None:
    result = run_checked(tmp_path, "token", seed=26, episode=(3.0, 5.0), calm=(1.0, 2.0))
    assert result.faults["token"] >= 1
    assert result.server_stats["unauthorized"] > 0  # the wrong token really was sent
    assert result.audit.accepted == result.audit.valid  # nothing dead-lettered by the 401s
