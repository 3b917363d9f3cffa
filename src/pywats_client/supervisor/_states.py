"""Lifecycle of one supervised instance: states, restart policy and deadlines.

Deliberately stdlib-only and free of I/O (as supervisord's ``states.py``): every
method takes ``now`` (seconds from ``time.monotonic()``), so the whole policy is
unit-tested with a fake clock. The supervisor feeds events in
(:meth:`Lifecycle.on_heartbeat`, :meth:`Lifecycle.on_exit`, commands) and asks
:meth:`Lifecycle.poll` what to do next (spawn, send stop, terminate, kill).
"""

from __future__ import annotations

import random
import signal
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "EXIT_CONFIG",
    "EXIT_LOCKED",
    "Action",
    "Lifecycle",
    "Phase",
    "RestartPolicy",
    "State",
    "StopReason",
    "Timing",
    "describe_exit",
]

#: Worker exit code for a bad configuration (sysexits EX_CONFIG): no restart
#: until the registry or the config file changes.
EXIT_CONFIG = 78
#: Worker exit code when another process holds the instance lock (EX_TEMPFAIL):
#: retried with backoff, since a stray old worker usually goes away.
EXIT_LOCKED = 75


#: How ``last_error`` begins while a station runs on an old config because the
#: edited one is invalid (``status --check`` flags it: the next restart is fatal).
CONFIG_NOT_APPLIED = "config change not applied (worker keeps running)"


class State(str, Enum):
    """What status shows for an instance (``status.json``, ``list_instances``)."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    BACKOFF = "backoff"
    CRASH_LOOPING = "crash-looping"
    STOPPING = "stopping"
    FATAL = "fatal"
    DISABLED = "disabled"
    NOT_RUNNING = "not-running"

    def __str__(self) -> str:
        return self.value


class Phase(Enum):
    """Internal lifecycle phase (display states are derived from it)."""

    STOPPED = "stopped"
    STARTING = "starting"  # process spawned, not yet ready
    RUNNING = "running"  # worker said "ready"
    BACKOFF = "backoff"  # waiting until restart_at
    STOPPING = "stopping"  # stop sent, escalating to terminate/kill
    FATAL = "fatal"  # bad config: waits for a change or a manual start


class Action(Enum):
    """What the supervisor must do for an instance now."""

    SPAWN = "spawn"
    SEND_STOP = "send-stop"
    TERMINATE = "terminate"
    KILL = "kill"


class StopReason(Enum):
    REQUESTED = "requested"  # operator stop: stays stopped
    SHUTDOWN = "shutdown"  # supervisor shutting down
    RESTART = "restart"  # operator restart / changed config: start again at once
    HUNG = "hung"  # missed heartbeats: counts as a crash


@dataclass(frozen=True)
class Timing:
    """The supervisor settings the lifecycle needs, in seconds."""

    heartbeat_timeout: float = 10.0
    startup_grace: float = 30.0
    stop_timeout: float = 10.0
    kill_timeout: float = 5.0
    restart_initial_delay: float = 0.5
    restart_max_delay: float = 60.0
    stable_after: float = 60.0
    crash_loop_exits: int = 5
    crash_loop_window: float = 60.0
    jitter: float = 0.2


#: Exit codes from here up are Windows NTSTATUS errors (an access violation is
#: 0xC0000005), known by their hex form rather than as 3221225477.
_NTSTATUS_ERROR = 0xC0000000


def describe_exit(code: int | None) -> str:
    """Operator wording for a process exit code (negative: killed by a signal)."""
    if code is None:
        return "worker could not be started"
    if code == EXIT_CONFIG:
        return "worker stopped: configuration error (exit 78); fix the config file"
    if code == EXIT_LOCKED:
        return "worker refused to start: instance locked by another process (exit 75)"
    if code < 0:
        if sys.platform == "win32" and code == -signal.SIGTERM:
            return "worker was terminated (TerminateProcess)"  # how multiprocessing reports it
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker was killed by {name}"
    if code >= _NTSTATUS_ERROR:
        return f"worker crashed with code {code:#010x}"  # Windows NTSTATUS, e.g. 0xc0000005
    return f"worker exited with code {code}"


class RestartPolicy:
    """When to start again after an unplanned exit.

    * The first restart after a stable run (``stable_after`` seconds up) is
      immediate.
    * Further quick exits back off exponentially from ``restart_initial_delay``
      with +/- ``jitter``, capped at ``restart_max_delay``.
    * ``crash_loop_exits`` exits within ``crash_loop_window`` mark the instance
      crash-looping: it is retried at the cap (never given up silently) until
      it runs stably again or an operator stops/starts/restarts it.
    """

    def __init__(self, timing: Timing, rng: Callable[[], float] = random.random) -> None:
        self.timing = timing
        self._rng = rng
        self.failures = 0
        self.crash_looping = False
        self._stable = False
        self._exits: deque[float] = deque()

    def reset(self) -> None:
        """Forget past exits (operator action)."""
        self.failures = 0
        self.crash_looping = False
        self._stable = False
        self._exits.clear()

    def mark_stable(self) -> None:
        """The current run has been up ``stable_after``: start the count afresh."""
        self.reset()
        self._stable = True

    @property
    def stable(self) -> bool:
        return self._stable

    def record_exit(self, now: float) -> float:
        """Register an unplanned exit at ``now``; return the delay before the next start."""
        t = self.timing
        self._exits.append(now)
        while self._exits and self._exits[0] < now - t.crash_loop_window:
            self._exits.popleft()
        if len(self._exits) >= t.crash_loop_exits:
            self.crash_looping = True
        was_stable, self._stable = self._stable, False
        if self.crash_looping:
            return t.restart_max_delay * (1.0 - t.jitter * self._rng())
        if was_stable:
            return 0.0
        base = min(t.restart_max_delay, t.restart_initial_delay * 2.0 ** min(self.failures, 60))
        self.failures += 1
        jittered = base * (1.0 + t.jitter * (2.0 * self._rng() - 1.0))
        return max(0.0, min(t.restart_max_delay, jittered))


class Lifecycle:
    """State machine of one instance's worker process.

    Commands (:meth:`start`, :meth:`stop`, :meth:`restart`, :meth:`shutdown`)
    and events (:meth:`on_heartbeat`, :meth:`on_ready`, :meth:`on_exit`) only
    change state; :meth:`poll` turns state and deadlines into at most one
    :class:`Action` per call. Call ``poll`` until it returns ``None``.
    """

    def __init__(self, timing: Timing, rng: Callable[[], float] = random.random) -> None:
        self.timing = timing
        self.policy = RestartPolicy(timing, rng)
        self.phase = Phase.STOPPED
        self.paused = False
        self.restarts = 0
        self.last_exit: int | None = None
        self.last_error: str | None = None
        #: An edited config that was refused while the worker runs on the old one
        #: (``CONFIG_NOT_APPLIED: ...``): kept until a config loads, unlike
        #: ``last_error``, which a stable run or a newer error replaces.
        self.config_problem: str | None = None
        self.spawned_at: float | None = None
        self.last_beat: float | None = None
        self.restart_at: float | None = None
        self.stop_reason: StopReason | None = None
        self._stop_sent_at: float | None = None
        self._terminated_at: float | None = None
        self._killed = False

    # --- settings ------------------------------------------------------------------

    def update_timing(self, timing: Timing) -> None:
        """New supervisor settings (live reload); past exits are kept."""
        self.timing = timing
        self.policy.timing = timing

    # --- derived -------------------------------------------------------------------

    @property
    def process_expected(self) -> bool:
        """A worker process exists (or is being stopped) in this phase."""
        return self.phase in (Phase.STARTING, Phase.RUNNING, Phase.STOPPING)

    @property
    def state(self) -> State:
        """The state shown to people and programs."""
        phase = self.phase
        if phase is Phase.FATAL:
            return State.FATAL
        if phase is Phase.STOPPED:
            return State.STOPPED
        if phase is Phase.STOPPING:
            return State.STOPPING
        if self.policy.crash_looping and phase in (Phase.BACKOFF, Phase.STARTING):
            return State.CRASH_LOOPING
        if phase is Phase.BACKOFF:
            return State.BACKOFF
        if phase is Phase.STARTING:
            return State.STARTING
        return State.PAUSED if self.paused else State.RUNNING

    def uptime(self, now: float) -> float | None:
        if self.spawned_at is None or self.phase not in (Phase.STARTING, Phase.RUNNING):
            return None
        return max(0.0, now - self.spawned_at)

    def next_deadline(self) -> float | None:
        """Earliest monotonic time at which :meth:`poll` may have something to do."""
        t = self.timing
        deadlines: list[float] = []
        if self.phase is Phase.BACKOFF and self.restart_at is not None:
            deadlines.append(self.restart_at)
        elif self.phase in (Phase.STARTING, Phase.RUNNING) and self.spawned_at is not None:
            if self.last_beat is None:
                deadlines.append(self.spawned_at + t.startup_grace)
            else:
                deadlines.append(self.last_beat + t.heartbeat_timeout)
            if self.phase is Phase.RUNNING and not self.policy.stable:
                deadlines.append(self.spawned_at + t.stable_after)
        elif self.phase is Phase.STOPPING:
            if self._stop_sent_at is None:
                return float("-inf")
            if self._terminated_at is None:
                deadlines.append(self._stop_sent_at + t.stop_timeout)
            elif not self._killed:
                deadlines.append(self._terminated_at + t.kill_timeout)
        return min(deadlines) if deadlines else None

    # --- commands ------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Run the worker (operator start, enabled instance, changed config)."""
        if self.phase in (Phase.STOPPED, Phase.FATAL, Phase.BACKOFF):
            self.policy.reset()
            self.phase = Phase.BACKOFF
            self.restart_at = now
        elif self.phase is Phase.STOPPING and self.stop_reason is not StopReason.HUNG:
            self.stop_reason = StopReason.RESTART

    def stop(self, now: float) -> None:
        """Stop the worker and keep it stopped (operator stop, disabled instance)."""
        self._stop(StopReason.REQUESTED)
        self.policy.reset()

    def shutdown(self, now: float) -> None:
        """Stop because the supervisor is exiting."""
        self._stop(StopReason.SHUTDOWN)

    def restart(self, now: float) -> None:
        """Stop gracefully, then start at once; not counted as a crash."""
        self.policy.reset()
        if self.phase in (Phase.STARTING, Phase.RUNNING):
            self._enter_stopping(StopReason.RESTART)
        else:
            self.start(now)

    def _stop(self, reason: StopReason) -> None:
        if self.phase in (Phase.STARTING, Phase.RUNNING):
            self._enter_stopping(reason)
        elif self.phase is Phase.STOPPING:
            self.stop_reason = reason
        elif self.phase is Phase.BACKOFF:
            self.phase = Phase.STOPPED
            self.restart_at = None

    def _enter_stopping(self, reason: StopReason) -> None:
        self.phase = Phase.STOPPING
        self.stop_reason = reason
        self._stop_sent_at = None
        self._terminated_at = None
        self._killed = False

    # --- events --------------------------------------------------------------------

    def on_heartbeat(self, now: float) -> bool:
        """A heartbeat arrived; True if it was the first of this worker."""
        first = self.last_beat is None
        self.last_beat = now
        return first

    def on_ready(self, now: float) -> None:
        """The worker finished starting its client."""
        self.last_beat = now if self.last_beat is None else self.last_beat
        if self.phase is Phase.STARTING:
            self.phase = Phase.RUNNING

    def on_exit(self, now: float, code: int | None, reason: str | None = None) -> None:
        """The worker process ended (or could not be spawned: ``code`` None)."""
        self.last_exit = code
        stop_reason, self.stop_reason = self.stop_reason, None
        was_stopping = self.phase is Phase.STOPPING
        self.spawned_at = None
        self.last_beat = None
        if was_stopping and stop_reason in (StopReason.REQUESTED, StopReason.SHUTDOWN):
            self.phase = Phase.STOPPED
            return
        if was_stopping and stop_reason is StopReason.RESTART:
            self.restarts += 1
            self.phase = Phase.BACKOFF
            self.restart_at = now
            return
        if code == EXIT_CONFIG:
            self.phase = Phase.FATAL
            self.last_error = reason or describe_exit(code)
            return
        if stop_reason is not StopReason.HUNG:
            self.last_error = reason or describe_exit(code)
        self.restarts += 1
        self.phase = Phase.BACKOFF
        self.restart_at = now + self.policy.record_exit(now)

    def fail_config(self, reason: str) -> None:
        """The config cannot be loaded: do not spawn until it changes."""
        self.phase = Phase.FATAL
        self.last_error = reason
        self.config_problem = None  # the state says it now
        self.restart_at = None
        self.spawned_at = None
        self.last_beat = None

    # --- the clock -----------------------------------------------------------------

    def poll(self, now: float) -> Action | None:
        """Advance deadlines; return the next action for the supervisor, if any."""
        t = self.timing
        phase = self.phase
        if phase is Phase.BACKOFF:
            if self.restart_at is not None and now >= self.restart_at:
                self.phase = Phase.STARTING
                self.spawned_at = now
                self.last_beat = None
                self.restart_at = None
                return Action.SPAWN
            return None
        if phase in (Phase.STARTING, Phase.RUNNING):
            assert self.spawned_at is not None
            if self.last_beat is None:
                if now - self.spawned_at >= t.startup_grace:
                    self.last_error = (
                        f"no heartbeat within startup_grace ({t.startup_grace:g} s) after start; "
                        "restarting the worker"
                    )
                    self._enter_stopping(StopReason.HUNG)
                    return self.poll(now)
            elif now - self.last_beat >= t.heartbeat_timeout:
                self.last_error = (
                    f"no heartbeat for {now - self.last_beat:.1f} s (heartbeat_timeout "
                    f"{t.heartbeat_timeout:g} s): worker hung; restarting it"
                )
                self._enter_stopping(StopReason.HUNG)
                return self.poll(now)
            if (
                phase is Phase.RUNNING
                and not self.policy.stable
                and now - self.spawned_at >= t.stable_after
            ):
                self.policy.mark_stable()
                # Healthy again: the old crash reason is history (last_exit and
                # the log keep it); status shows current problems only.
                self.last_error = None
            return None
        if phase is Phase.STOPPING:
            if self.stop_reason is StopReason.HUNG and not self._killed:
                # A worker that stopped beating cannot act on a stop request (its loop
                # answers both); every step it takes is crash-safe, so kill it now.
                self._stop_sent_at = self._terminated_at = now
                self._killed = True
                return Action.KILL
            if self._stop_sent_at is None:
                self._stop_sent_at = now
                return Action.SEND_STOP
            if self._terminated_at is None:
                if now - self._stop_sent_at >= t.stop_timeout:
                    self._terminated_at = now
                    return Action.TERMINATE
                return None
            if not self._killed and now - self._terminated_at >= t.kill_timeout:
                self._killed = True
                return Action.KILL
        return None
