"""The test-only worker hooks parse per instance and stay off by default."""

from __future__ import annotations

from pywats_client.supervisor._testhooks import CRASH_AT_START_ENV, HANG_AFTER_ENV, TestHooks


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
