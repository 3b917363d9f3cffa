"""The per-instance lifecycle, driven by a fake clock (no processes)."""

from __future__ import annotations

import sys

import pytest

from pywats_client.supervisor._states import (
    EXIT_CONFIG,
    Action,
    Lifecycle,
    Phase,
    State,
    Timing,
    describe_exit,
)

TIMING = Timing(
    heartbeat_timeout=10.0,
    startup_grace=30.0,
    stop_timeout=10.0,
    kill_timeout=5.0,
    restart_initial_delay=0.5,
    restart_max_delay=60.0,
    stable_after=60.0,
    crash_loop_exits=5,
    crash_loop_window=60.0,
    jitter=0.2,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def actions(lc: Lifecycle, now: float) -> list[Action]:
    out = []
    while (action := lc.poll(now)) is not None:
        out.append(action)
    return out


def started(clock: Clock) -> Lifecycle:
    lc = Lifecycle(TIMING, rng=lambda: 0.5)
    lc.start(clock.now)
    assert actions(lc, clock.now) == [Action.SPAWN]
    lc.on_heartbeat(clock.now)
    lc.on_ready(clock.now)
    assert lc.state is State.RUNNING
    return lc


def test_start_spawns_once_and_ready_means_running() -> None:
    clock = Clock()
    lc = Lifecycle(TIMING)
    assert lc.state is State.STOPPED
    lc.start(clock.now)
    assert actions(lc, clock.now) == [Action.SPAWN]
    assert lc.state is State.STARTING
    assert actions(lc, clock.now) == []
    lc.on_heartbeat(clock.advance(0.3))
    assert lc.state is State.STARTING  # alive, client not started yet
    lc.on_ready(clock.now)
    assert lc.state is State.RUNNING
    assert lc.uptime(clock.advance(5)) == pytest.approx(5.3)


def test_missing_first_heartbeat_within_startup_grace_is_hung() -> None:
    clock = Clock()
    lc = Lifecycle(TIMING)
    lc.start(clock.now)
    actions(lc, clock.now)
    assert actions(lc, clock.advance(29.9)) == []
    assert actions(lc, clock.advance(0.2)) == [Action.KILL]
    assert lc.state is State.STOPPING
    assert "startup_grace" in (lc.last_error or "")


def test_hung_worker_is_killed_at_once_and_restarted() -> None:
    """A stop request would wait stop_timeout for a loop that no longer answers."""
    clock = Clock()
    lc = started(clock)
    lc.on_heartbeat(clock.advance(1))
    assert lc.next_deadline() == clock.now + 10
    assert actions(lc, clock.advance(9.9)) == []
    assert actions(lc, clock.advance(0.1)) == [Action.KILL]
    assert "hung" in (lc.last_error or "")
    assert actions(lc, clock.advance(100)) == []  # kill is sent once; wait for the exit
    lc.on_exit(clock.advance(0.1), -9)
    assert lc.restarts == 1
    assert lc.state is State.BACKOFF  # a hang counts as a crash
    assert "hung" in (lc.last_error or "")  # the exit does not hide why it was killed
    assert actions(lc, clock.advance(0.5)) == [Action.SPAWN]


def test_heartbeats_keep_a_worker_alive_indefinitely() -> None:
    clock = Clock()
    lc = started(clock)
    for _ in range(1000):
        lc.on_heartbeat(clock.advance(1.0))
        assert actions(lc, clock.now) == []
    assert lc.state is State.RUNNING


def test_crash_after_a_stable_run_restarts_immediately() -> None:
    clock = Clock()
    lc = started(clock)
    for _ in range(61):
        lc.on_heartbeat(clock.advance(1.0))
        actions(lc, clock.now)
    lc.on_exit(clock.advance(0.1), -9)
    assert lc.last_error == describe_exit(-9)
    assert actions(lc, clock.now) == [Action.SPAWN]
    # a second crash soon after is not after a stable run: backoff from 0.5 s
    lc.on_exit(clock.advance(1.0), 1)
    assert lc.restart_at == clock.now + 0.5


def test_always_crashing_worker_becomes_crash_looping_and_keeps_being_retried() -> None:
    clock = Clock()
    lc = Lifecycle(TIMING, rng=lambda: 0.5)
    lc.start(clock.now)
    for _ in range(12):
        assert lc.next_deadline() is not None
        clock.now = max(clock.now, lc.next_deadline() or clock.now)
        assert actions(lc, clock.now) == [Action.SPAWN]
        lc.on_exit(clock.advance(0.2), 1, "boom")
    assert lc.state is State.CRASH_LOOPING
    assert lc.last_error == "boom"
    assert lc.restarts == 12
    # retried at the cap: about one spawn per restart_max_delay, not a spin
    assert lc.restart_at is not None
    assert lc.restart_at - clock.now >= TIMING.restart_max_delay * 0.8
    # the state stays crash-looping while it starts again
    clock.now = lc.restart_at
    assert actions(lc, clock.now) == [Action.SPAWN]
    assert lc.state is State.CRASH_LOOPING
    lc.on_heartbeat(clock.now)
    lc.on_ready(clock.now)
    assert lc.state is State.RUNNING
    for _ in range(61):
        lc.on_heartbeat(clock.advance(1.0))
        actions(lc, clock.now)
    assert not lc.policy.crash_looping  # a stable run clears it


def test_config_error_exit_is_fatal_without_restart_until_started_again() -> None:
    clock = Clock()
    lc = Lifecycle(TIMING)
    lc.start(clock.now)
    actions(lc, clock.now)
    lc.on_exit(clock.advance(0.3), EXIT_CONFIG, "config.json: retry: unknown key")
    assert lc.state is State.FATAL
    assert lc.last_error == "config.json: retry: unknown key"
    assert lc.next_deadline() is None
    assert actions(lc, clock.advance(3600)) == []
    lc.start(clock.now)  # config changed / operator start
    assert actions(lc, clock.now) == [Action.SPAWN]


def test_operator_stop_is_graceful_and_final() -> None:
    clock = Clock()
    lc = started(clock)
    lc.stop(clock.now)
    assert actions(lc, clock.now) == [Action.SEND_STOP]
    lc.on_exit(clock.advance(1), 0)
    assert lc.state is State.STOPPED
    assert lc.restarts == 0
    assert actions(lc, clock.advance(1000)) == []


def test_stop_during_backoff_cancels_the_restart_and_resets_the_detector() -> None:
    clock = Clock()
    lc = Lifecycle(TIMING, rng=lambda: 0.5)
    lc.start(clock.now)
    for _ in range(5):
        clock.now = lc.next_deadline() or clock.now
        actions(lc, clock.now)
        lc.on_exit(clock.advance(0.1), 1)
    assert lc.state is State.CRASH_LOOPING
    lc.stop(clock.now)
    assert lc.state is State.STOPPED
    assert not lc.policy.crash_looping
    assert actions(lc, clock.advance(1000)) == []


def test_restart_command_stops_then_starts_at_once_and_is_not_a_crash() -> None:
    clock = Clock()
    lc = started(clock)
    lc.restart(clock.now)
    assert actions(lc, clock.now) == [Action.SEND_STOP]
    lc.on_exit(clock.advance(0.5), 0)
    assert actions(lc, clock.now) == [Action.SPAWN]
    assert lc.restarts == 1
    assert lc.policy.failures == 0


def test_stop_while_a_hung_worker_is_being_killed_leaves_it_stopped() -> None:
    clock = Clock()
    lc = started(clock)
    assert actions(lc, clock.advance(10)) == [Action.KILL]
    lc.stop(clock.now)
    assert actions(lc, clock.advance(100)) == []
    lc.on_exit(clock.advance(1), -9)
    assert lc.state is State.STOPPED


def test_shutdown_stops_running_and_cancels_pending_restarts() -> None:
    clock = Clock()
    running = started(clock)
    waiting = Lifecycle(TIMING)
    waiting.start(clock.now)
    actions(waiting, clock.now)
    waiting.on_exit(clock.advance(0.1), 1)
    assert waiting.state is State.BACKOFF
    for lc in (running, waiting):
        lc.shutdown(clock.now)
    assert actions(running, clock.now) == [Action.SEND_STOP]
    assert waiting.state is State.STOPPED
    running.on_exit(clock.advance(1), 0)
    assert running.state is State.STOPPED


def test_paused_running_worker_shows_paused() -> None:
    clock = Clock()
    lc = started(clock)
    lc.paused = True
    assert lc.state is State.PAUSED
    assert lc.phase is Phase.RUNNING


def test_spawn_failure_counts_as_a_crash() -> None:
    clock = Clock()
    lc = Lifecycle(TIMING, rng=lambda: 0.5)
    lc.start(clock.now)
    actions(lc, clock.now)
    lc.on_exit(clock.now, None, "could not start a worker process: [Errno 12]")
    assert lc.state is State.BACKOFF
    assert lc.restart_at == clock.now + 0.5


def test_describe_exit_names_signals_and_special_codes() -> None:
    assert "SIGKILL" in describe_exit(-9)
    assert "configuration" in describe_exit(EXIT_CONFIG)
    assert "locked" in describe_exit(75)
    assert describe_exit(3) == "worker exited with code 3"
    assert describe_exit(3221225477) == "worker crashed with code 0xc0000005"  # Windows


def test_describe_exit_of_a_terminated_worker_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """multiprocessing reports TerminateProcess as -SIGTERM; no signal was sent."""
    monkeypatch.setattr(sys, "platform", "win32")
    assert describe_exit(-15) == "worker was terminated (TerminateProcess)"


def test_last_error_clears_once_the_restarted_worker_runs_stably() -> None:
    clock = Clock()
    lc = started(clock)
    lc.on_exit(clock.advance(1.0), -9)
    clock.now = max(clock.now, lc.next_deadline() or clock.now)
    assert actions(lc, clock.now) == [Action.SPAWN]
    lc.on_heartbeat(clock.now)
    lc.on_ready(clock.now)
    assert lc.last_error == describe_exit(-9)  # still shown while the new run is young
    for _ in range(61):
        lc.on_heartbeat(clock.advance(1.0))
        actions(lc, clock.now)
    assert lc.last_error is None
    assert lc.last_exit == -9  # the history stays available
