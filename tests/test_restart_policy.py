"""Restart policy: immediate after a stable run, exponential backoff, crash-loop at the cap."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywats_client.supervisor._states import RestartPolicy, Timing

TIMING = Timing(
    restart_initial_delay=0.5,
    restart_max_delay=60.0,
    stable_after=60.0,
    crash_loop_exits=5,
    crash_loop_window=60.0,
    jitter=0.2,
)


def no_jitter() -> float:
    """rng value for which +/- jitter is exactly zero."""
    return 0.5


def test_quick_exits_back_off_exponentially_from_the_initial_delay() -> None:
    policy = RestartPolicy(TIMING, no_jitter)
    # 100 s apart: never a crash loop, never stable (no mark_stable)
    delays = [policy.record_exit(float(i * 100)) for i in range(10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert not policy.crash_looping


def test_first_restart_after_a_stable_run_is_immediate_then_backoff_resumes() -> None:
    policy = RestartPolicy(TIMING, no_jitter)
    assert policy.record_exit(0.0) == 0.5
    policy.mark_stable()
    assert policy.record_exit(100.0) == 0.0
    assert policy.record_exit(101.0) == 0.5
    assert policy.record_exit(102.0) == 1.0


def test_crash_loop_after_n_exits_within_window_retries_at_the_cap() -> None:
    policy = RestartPolicy(TIMING, no_jitter)
    now = 0.0
    for _ in range(4):
        delay = policy.record_exit(now)
        assert delay < TIMING.restart_max_delay
        now += delay + 0.1
    assert not policy.crash_looping
    delay = policy.record_exit(now)
    assert policy.crash_looping
    assert TIMING.restart_max_delay * (1 - TIMING.jitter) <= delay <= TIMING.restart_max_delay
    # keeps retrying (never gives up), always at the cap while crash-looping
    for _ in range(20):
        now += delay
        delay = policy.record_exit(now)
        assert delay >= TIMING.restart_max_delay * (1 - TIMING.jitter)
        assert policy.crash_looping


def test_exits_spread_wider_than_the_window_are_not_a_crash_loop() -> None:
    policy = RestartPolicy(TIMING, no_jitter)
    for i in range(20):
        policy.record_exit(i * 20.0)  # at most 3 inside any 60 s window
    assert not policy.crash_looping


def test_stable_run_and_reset_clear_the_crash_loop() -> None:
    policy = RestartPolicy(TIMING, no_jitter)
    for i in range(5):
        policy.record_exit(float(i))
    assert policy.crash_looping
    policy.mark_stable()
    assert not policy.crash_looping
    assert policy.record_exit(200.0) == 0.0
    for i in range(5):
        policy.record_exit(300.0 + i)
    policy.reset()
    assert not policy.crash_looping
    assert policy.record_exit(400.0) == 0.5  # a manual start is not a stable run


@given(
    rng_values=st.lists(st.floats(min_value=0.0, max_value=0.999999), min_size=1, max_size=40),
    gaps=st.lists(st.floats(min_value=0.0, max_value=500.0), min_size=1, max_size=40),
)
def test_delay_is_always_within_zero_and_the_cap(
    rng_values: list[float], gaps: list[float]
) -> None:
    values = iter(rng_values * 50)
    policy = RestartPolicy(TIMING, lambda: next(values))
    now = 0.0
    for gap in gaps:
        now += gap
        delay = policy.record_exit(now)
        assert 0.0 <= delay <= TIMING.restart_max_delay


@pytest.mark.parametrize("seed", range(5))
def test_jitter_spreads_delays_around_the_nominal_value(seed: int) -> None:
    rng = random.Random(seed)
    seen = []
    for _ in range(200):
        policy = RestartPolicy(TIMING, rng.random)
        policy.record_exit(0.0)
        seen.append(policy.record_exit(100.0))  # nominal 1.0
    assert min(seen) >= 0.8 - 1e-9
    assert max(seen) <= 1.2 + 1e-9
    assert max(seen) - min(seen) > 0.2  # not all the same: jitter is applied
