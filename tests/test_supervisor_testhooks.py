"""The test-only worker hooks parse per instance and stay off by default."""

from __future__ import annotations

import time

import pytest

from pywats_client.supervisor._testhooks import (
    CLOCK_JUMPS_ENV,
    CRASH_AT_START_ENV,
    EMPTY_GRACE_ENV,
    HANG_AFTER_ENV,
    TestHooks,
    install_fake_clock,
)

REAL_TIME, REAL_TIME_NS = time.time, time.time_ns


def test_off_without_environment() -> None:
    hooks = TestHooks.from_env("st-1", {})
    assert not hooks.active
    assert hooks == TestHooks()


def test_crash_at_start_by_name_or_for_all() -> None:
    env = {CRASH_AT_START_ENV: "st-2, st-3"}
    assert TestHooks.from_env("st-2", env).crash_at_start
    assert not TestHooks.from_env("st-1", env).crash_at_start
    assert TestHooks.from_env("anything", {CRASH_AT_START_ENV: "*"}).crash_at_start


def test_hang_after_per_instance_or_for_all() -> None:
    env = {HANG_AFTER_ENV: "st-1:2.5,st-2:7"}
    assert TestHooks.from_env("st-1", env).hang_after == 2.5
    assert TestHooks.from_env("st-2", env).hang_after == 7.0
    assert TestHooks.from_env("st-3", env).hang_after is None
    assert TestHooks.from_env("st-3", {HANG_AFTER_ENV: "4"}).hang_after == 4.0
    assert TestHooks.from_env("st-1", {HANG_AFTER_ENV: "st-1:soon"}).hang_after is None


def test_clock_jumps_parse_per_instance_in_time_order() -> None:
    env = {CLOCK_JUMPS_ENV: "*:20:0, st-1:5:3600, st-2:1:-60, st-1:bad:1"}
    assert TestHooks.from_env("st-1", env).clock_jumps == ((5.0, 3600.0), (20.0, 0.0))
    assert TestHooks.from_env("st-2", env).clock_jumps == ((1.0, -60.0), (20.0, 0.0))
    assert TestHooks.from_env("st-3", {}).clock_jumps == ()
    assert TestHooks.from_env("st-3", env).active


def test_empty_grace_needs_a_non_negative_number() -> None:
    assert TestHooks.from_env("a", {EMPTY_GRACE_ENV: "2.5"}).empty_grace == 2.5
    assert TestHooks.from_env("a", {EMPTY_GRACE_ENV: "-1"}).empty_grace is None
    assert TestHooks.from_env("a", {EMPTY_GRACE_ENV: "soon"}).empty_grace is None


def test_fake_clock_jumps_wall_time_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Restore the real functions after the test, whatever install_fake_clock did.
    monkeypatch.setattr(time, "time", time.time)
    monkeypatch.setattr(time, "time_ns", time.time_ns)
    now = [100.0]
    offset = install_fake_clock(((1.0, 3600.0), (2.0, -30.0)), monotonic=lambda: now[0])
    mono = time.monotonic()
    assert abs(time.time() - REAL_TIME()) < 5
    now[0] = 101.5
    assert offset() == 3600.0
    assert 3595 < time.time() - REAL_TIME() < 3605
    assert 3595e9 < time.time_ns() - REAL_TIME_NS() < 3605e9
    now[0] = 102.0
    assert -35 < time.time() - REAL_TIME() < -25
    assert time.monotonic() - mono < 5  # monotonic untouched
