"""The supervisor: one worker process per enabled instance, kept alive and observed.

One thread runs everything (:meth:`Supervisor.run`): it blocks in
``multiprocessing.connection.wait`` on the workers' event pipes, their process
sentinels and a wake-up socket, so it uses no CPU while nothing happens.
Per-instance decisions live in :class:`~._states.Lifecycle` (pure, tested
with a fake clock); this module only performs them (spawn, send stop,
terminate, kill), reloads the registry when it changes, and writes
``status.json``. Commands from other threads (signals, the control channel of
:mod:`pywats_client.control`) are queued and run on the loop thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import psutil

from pywats_client._logging import (
    LogFormat,
    instance_log_path,
    registry_log_dir,
)
from pywats_client.control._errors import UnknownInstance
from pywats_client.control._server import ControlServer
from pywats_client.core.config import ClientConfig
from pywats_client.core.registry import InstanceEntry, Registry, SupervisorSettings
from pywats_client.errors import ConfigError, RegistryError
from pywats_client.supervisor import _protocol as msg
from pywats_client.supervisor._choices import CHOICES_NAME, Choices
from pywats_client.supervisor._handle import WorkerHandle, spawn_context
from pywats_client.supervisor._lock import SupervisorLock
from pywats_client.supervisor._metrics import MetricsServer, StatusCollector
from pywats_client.supervisor._slot import Slot, fingerprint
from pywats_client.supervisor._states import (
    CONFIG_NOT_APPLIED,
    Action,
    Lifecycle,
    Phase,
    State,
    StopReason,
    Timing,
    describe_exit,
)
from pywats_client.supervisor._status import count_queue_files
from pywats_client.supervisor._statusfile import STATUS_FORMAT, STATUS_NAME, write_status
from pywats_client.supervisor._wait import wait_any
from pywats_client.supervisor.worker import DEFAULT_RUNTIME, WorkerSpec

__all__ = ["KILL_TIMEOUT", "RELOAD_POLL_INTERVAL", "Supervisor"]

log = logging.getLogger("pywats_client.supervisor")

T = TypeVar("T")

#: Seconds between terminate() and kill() of a worker that ignored "stop".
KILL_TIMEOUT = 5.0
#: Seconds between checks of the registry and config files for changes.
RELOAD_POLL_INTERVAL = 1.5
#: The loop wakes at least this often (signals on Windows, clock sanity).
MAX_WAIT = 1.0
#: How long a command from another thread may wait for the loop.
COMMAND_TIMEOUT = 30.0


def timing_from(settings: SupervisorSettings) -> Timing:
    return Timing(
        heartbeat_timeout=settings.heartbeat_timeout,
        startup_grace=settings.startup_grace,
        stop_timeout=settings.stop_timeout,
        kill_timeout=KILL_TIMEOUT,
        restart_initial_delay=settings.restart_initial_delay,
        restart_max_delay=settings.restart_max_delay,
        stable_after=settings.stable_after,
        crash_loop_exits=settings.crash_loop_exits,
        crash_loop_window=settings.crash_loop_window,
    )


class Supervisor:
    """Runs and watches the workers of one registry (``pywats-client supervise``).

    ``log_level`` overrides every instance's configured level; ``runtime``
    (tests) names the module providing ``WATSClient``; ``clock`` and ``rng``
    are injectable for tests. :meth:`run` blocks until :meth:`request_shutdown`
    or SIGTERM/SIGINT (Ctrl+C/Ctrl+Break on Windows).
    """

    def __init__(
        self,
        registry_path: Path | str,
        *,
        log_level: str | None = None,
        log_format: LogFormat | None = None,
        runtime: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        install_signals: bool = True,
    ) -> None:
        self.registry_path = Path(registry_path).resolve()
        self.registry = Registry.load(self.registry_path, check_configs=False)
        self._registry_print = fingerprint(self.registry_path)
        self.settings = self.registry.supervisor
        self.state_dir = self.registry.state_dir
        self.log_dir = registry_log_dir(self.registry)
        self.log_level = log_level.upper() if log_level else None
        self.log_format: LogFormat = log_format or self.settings.log_format
        self.runtime = runtime or DEFAULT_RUNTIME
        self._clock = clock
        self._rng = rng
        self._install_signals = install_signals
        self._ctx = spawn_context()
        self._lock = SupervisorLock(self.state_dir, self.registry_path)
        self._slots: dict[str, Slot] = {}
        self._choices = Choices(self.state_dir / CHOICES_NAME)
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._loop_thread: int | None = None
        self._shutdown_requested = threading.Event()
        self._force_requested = threading.Event()
        self._reload_requested = threading.Event()
        self._shutting_down = False
        self._started_wall = time.time()
        self._create_time = _own_create_time()
        self._next_status = 0.0
        self._next_reload_check = 0.0
        self._written_states: dict[str, str] = {}
        self._status_dirty = True
        self._last_error: str | None = None
        self._document: dict[str, Any] | None = None
        self._metrics: MetricsServer | None = None
        self._control: ControlServer | None = None
        self.ready = threading.Event()

    # --- public API (thread-safe) ------------------------------------------------------

    @property
    def status_path(self) -> Path:
        return self.state_dir / STATUS_NAME

    @property
    def metrics_url(self) -> str | None:
        return self._metrics.url if self._metrics else None

    def run(self) -> int:
        """Supervise until asked to stop; returns the process exit code (0)."""
        self._lock.acquire()  # InstanceLockedError names the running supervisor
        try:
            self._wake_r, self._wake_w = socket.socketpair()
            for sock in (self._wake_r, self._wake_w):
                sock.setblocking(False)
            self._loop_thread = threading.get_ident()
            restore = self._install_signal_handlers()
            try:
                self._setup()
                self.ready.set()
                self._loop()
            finally:
                try:
                    self._teardown()
                finally:
                    restore()
        finally:
            self._loop_thread = None
            self._close_wake()
            self._lock.release()
        return 0

    def request_shutdown(self, *, force: bool = False) -> None:
        """Stop every worker gracefully (``force``: kill them now) and return from run()."""
        if force:
            self._force_requested.set()
        self._shutdown_requested.set()
        self._wake()

    def reload(self) -> None:
        """Re-read the registry and config files now (as on SIGHUP)."""
        self._reload_requested.set()
        self._wake()

    def start_instance(self, name: str) -> None:
        self._call(lambda: self._command(name, "start"))

    def stop_instance(self, name: str) -> None:
        self._call(lambda: self._command(name, "stop"))

    def restart_instance(self, name: str) -> None:
        self._call(lambda: self._command(name, "restart"))

    def pause_instance(self, name: str) -> None:
        self._call(lambda: self._command(name, "pause"))

    def resume_instance(self, name: str) -> None:
        self._call(lambda: self._command(name, "resume"))

    def reload_now(self) -> str | None:
        """Re-read the registry now and wait for it; why it was not applied, or None."""

        def apply() -> str | None:
            self._reload_requested.set()
            self._check_reload(self._clock())
            return self._last_error  # set by a refused registry, cleared by an applied one

        return self._call(apply)

    @property
    def shutting_down(self) -> bool:
        return self._shutdown_requested.is_set()

    @property
    def control_address(self) -> str | None:
        return self._control.address if self._control else None

    def records(self) -> list[dict[str, Any]]:
        """Every instance's status.json record as of now, plus ``removed``."""

        def collect() -> list[dict[str, Any]]:
            now, wall = self._clock(), time.time()
            return [{**s.record(now, wall), "removed": s.removed} for s in self._slots.values()]

        return self._call(collect)

    def states(self) -> dict[str, State]:
        """Current state of every instance (a consistent copy)."""
        return self._call(lambda: {n: s.state for n, s in self._slots.items()})

    def pids(self) -> dict[str, int | None]:
        return self._call(
            lambda: {n: s.handle.pid if s.handle else None for n, s in self._slots.items()}
        )

    # --- thread plumbing ----------------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        if self._loop_thread is None or self._loop_thread == threading.get_ident():
            return fn()
        future: Future[T] = Future()
        self._calls.put((fn, future))
        self._wake()
        return future.result(timeout=COMMAND_TIMEOUT)

    def _run_calls(self) -> None:
        while True:
            try:
                fn, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                future.set_exception(exc)

    def _wake(self) -> None:
        sock = self._wake_w
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.send(b"\0")

    def _drain_wake(self) -> None:
        sock = self._wake_r
        if sock is not None:
            with contextlib.suppress(OSError):
                while sock.recv(4096):
                    pass

    def _close_wake(self) -> None:
        socks, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), None, None
        for sock in socks:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

    def _install_signal_handlers(self) -> Callable[[], None]:
        if not self._install_signals or threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous: dict[int, Any] = {}

        def on_stop(signum: int, frame: FrameType | None) -> None:
            # A second Ctrl+C / SIGTERM while stopping means "now".
            self.request_shutdown(force=self._shutdown_requested.is_set())

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self.reload()

        wanted: list[tuple[str, Callable[[int, FrameType | None], None]]] = [
            ("SIGINT", on_stop),
            ("SIGTERM", on_stop),
            ("SIGBREAK", on_stop),  # Ctrl+Break on Windows
            ("SIGHUP", on_hup),  # POSIX only
        ]
        for name, handler in wanted:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            with contextlib.suppress(OSError, ValueError):
                previous[signum] = signal.signal(signum, handler)

        def restore() -> None:
            for signum, handler in previous.items():
                with contextlib.suppress(OSError, ValueError, TypeError):
                    signal.signal(signum, handler)

        return restore

    # --- setup / teardown -------------------------------------------------------------

    def _setup(self) -> None:
        self._choices = Choices.load(self.state_dir)
        now = self._clock()
        for entry in self.registry.instances:
            self._add_slot(entry, now)
        self._choices.forget_except(set(self._slots))
        port = self.settings.metrics_port
        if port is not None:
            try:
                self._metrics = MetricsServer(
                    self.settings.metrics_host, port, StatusCollector(lambda: self._document)
                )
                log.info("metrics at %s", self._metrics.url)
            except OSError as exc:
                self._last_error = (
                    f"metrics server could not listen on {self.settings.metrics_host}:{port} "
                    f"({exc.strerror or exc}); change [supervisor] metrics_port"
                )
                log.error("%s", self._last_error)
        self._start_control()
        log.info(
            "supervisor started (pid %d): %d instance(s) from %s",
            os.getpid(),
            len(self._slots),
            self.registry_path,
        )

    def _start_control(self) -> None:
        server = ControlServer(self, self.state_dir)
        try:
            server.start()
        except OSError as exc:
            server.close()
            self._last_error = (
                f"control channel could not start ({exc}); 'pywats-client start/stop/restart/"
                "pause/resume/reload' will not reach this supervisor until it is restarted"
            )
            log.error("%s", self._last_error)
            return
        self._control = server
        log.info("control channel at %s", server.address)

    def _teardown(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        leftovers = [s.handle for s in self._slots.values() if s.handle is not None]
        for handle in leftovers:  # only on an unexpected error: never leave orphans
            handle.kill()
        for handle in leftovers:
            handle.process.join(timeout=5)
            handle.reap()
            handle.close()
        for slot in self._slots.values():
            slot.handle = None
        self._write_status(self._clock(), exited=True)
        if self._metrics is not None:
            self._metrics.close()
        log.info("supervisor stopped")

    # --- the loop -----------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            now = self._clock()
            self._run_calls()
            if self._shutdown_requested.is_set() and not self._shutting_down:
                self._begin_shutdown(now)
            if self._force_requested.is_set():
                self._force_requested.clear()
                self._kill_all()
            if not self._shutting_down:
                self._check_reload(now)
            self._service(now)
            if self._shutting_down and all(s.handle is None for s in self._slots.values()):
                return
            self._maybe_write_status(now)
            self._wait(self._clock())

    def _wait(self, now: float) -> None:
        deadline = min(self._next_status, self._next_reload_check)
        for slot in self._slots.values():
            d = slot.lifecycle.next_deadline()
            if d is not None:
                deadline = min(deadline, d)
        timeout = min(MAX_WAIT, max(0.0, deadline - now))
        waitables: list[Any] = [self._wake_r] if self._wake_r is not None else []
        owners: dict[Any, Slot] = {}
        for slot in self._slots.values():
            handle = slot.handle
            if handle is None:
                continue
            waitables.append(handle.sentinel)
            owners[handle.sentinel] = slot
            if handle.events is not None:
                waitables.append(handle.events)
                owners[handle.events] = slot
        try:
            ready = wait_any(waitables, timeout)
        except InterruptedError:  # Ctrl+C on Windows interrupts the wait; handlers ran
            ready = []
        now = self._clock()
        exited: list[Slot] = []
        for obj in ready:
            if obj is self._wake_r:
                self._drain_wake()
                continue
            slot = owners[obj]
            if slot.handle is None:
                continue
            if obj == slot.handle.sentinel:
                exited.append(slot)
            else:
                self._on_messages(slot, slot.handle.drain(), now)
        for slot in exited:
            self._on_exit(slot, now)

    def _service(self, now: float) -> None:
        for slot in list(self._slots.values()):
            for _ in range(8):  # a handful of transitions per tick at most
                action = slot.lifecycle.poll(now)
                if action is None:
                    break
                self._perform(slot, action, now)
            if slot.removed and slot.handle is None and not slot.lifecycle.process_expected:
                del self._slots[slot.name]
                self._status_dirty = True
                if self._shutting_down:
                    continue
                entry = self.registry.get(slot.name)
                if entry is not None:  # re-added meanwhile
                    self._add_slot(entry, now)
                elif not any(_same_station(other, slot) for other in self._slots.values()):
                    _warn_of_stranded_reports(slot)  # (a renamed station sends them itself)

    def _perform(self, slot: Slot, action: Action, now: float) -> None:
        lc = slot.lifecycle
        if action is Action.SPAWN:
            self._spawn(slot, now)
        elif action is Action.SEND_STOP:
            if slot.handle is None:
                return
            log.info("%s: stopping worker pid %d", slot.name, slot.handle.pid)
            slot.handle.send(msg.control("stop"))
        elif action is Action.TERMINATE and slot.handle is not None:
            log.warning(
                "%s: worker pid %d did not stop within %.0f s; terminating",
                slot.name,
                slot.handle.pid,
                lc.timing.stop_timeout,
            )
            slot.handle.terminate()
        elif action is Action.KILL and slot.handle is not None:
            if lc.stop_reason is StopReason.HUNG:
                log.warning("%s: %s; killing pid %d", slot.name, lc.last_error, slot.handle.pid)
            else:
                log.warning("%s: worker pid %d still alive; killing", slot.name, slot.handle.pid)
            slot.handle.kill()

    def _spawn(self, slot: Slot, now: float) -> None:
        try:
            config = ClientConfig.load(slot.config_path)
        except ConfigError as exc:
            log.error("%s: not started: %s", slot.name, exc)
            slot.lifecycle.fail_config(str(exc))
            self._status_dirty = True
            return
        sharer = self._queue_sharer(slot.name, config.queue_dir)
        if sharer is not None:
            reason = (
                f"{slot.config_path}: queue_path: the queue folder {config.queue_dir} is also "
                f"used by instance {sharer!r}; give each instance its own queue_path"
            )
            log.error("%s: not started: %s", slot.name, reason)
            slot.lifecycle.fail_config(reason)
            slot.queue_clash = True
            self._status_dirty = True
            return
        slot.queue_clash = False
        slot.log_path = instance_log_path(slot.name, config=config, log_dir=self.log_dir)
        slot.queue_path = config.queue_dir
        spec = WorkerSpec(
            name=slot.name,
            config_path=slot.config_path,
            log_file=slot.log_path,
            supervisor_pid=os.getpid(),
            heartbeat_interval=self.settings.heartbeat_interval,
            stop_timeout=self.settings.stop_timeout,
            log_level=self.log_level,
            log_format=self.log_format,
            log_max_bytes=self.settings.log_max_bytes,
            log_backups=self.settings.log_backups,
            runtime=self.runtime,
            start_paused=slot.lifecycle.paused,
        )
        try:
            handle = WorkerHandle.spawn(spec, self._ctx)
        except OSError as exc:
            reason = f"could not start a worker process: {exc}"
            log.error("%s: %s", slot.name, reason)
            slot.lifecycle.on_exit(now, None, reason)
            return
        slot.on_spawned(handle)
        log.info("%s: worker started (pid %d)", slot.name, handle.pid)
        self._status_dirty = True

    def _queue_sharer(self, name: str, queue_dir: Path) -> str | None:
        """Another instance of the registry whose config uses ``queue_dir``, if any.

        Two workers on one queue would fight over its lock forever; both are
        refused as a configuration error instead.
        """
        for other in self._slots.values():
            if other.name == name or other.removed:
                continue
            try:
                other_queue = other.queue_path or ClientConfig.load(other.config_path).queue_dir
            except ConfigError:
                continue
            if other_queue == queue_dir:
                return other.name
        return None

    def _on_messages(self, slot: Slot, messages: list[dict[str, Any]], now: float) -> None:
        lc = slot.lifecycle
        for message in messages:
            kind = message.get("type")
            if kind == "heartbeat":
                slot.heartbeat = message
                if lc.on_heartbeat(now):
                    self._status_dirty = True
            elif kind == "ready":
                lc.on_ready(now)
                log.info("%s: running (pid %s)", slot.name, slot.handle.pid if slot.handle else "?")
                self._status_dirty = True
            elif kind == "stopping":
                reason = message.get("reason")
                slot.exit_reason = str(reason) if reason else None

    def _on_exit(self, slot: Slot, now: float) -> None:
        handle = slot.handle
        assert handle is not None
        self._on_messages(slot, handle.drain(), now)  # e.g. the final "stopping" reason
        code = handle.reap()
        if code is None:  # sentinel fired, exit status not yet collected
            handle.process.join(timeout=1.0)
            code = handle.reap()
        handle.close()
        slot.handle = None
        lc = slot.lifecycle
        planned = lc.phase is Phase.STOPPING and lc.stop_reason in (
            StopReason.REQUESTED,
            StopReason.SHUTDOWN,
            StopReason.RESTART,
        )
        lc.on_exit(now, code, slot.exit_reason if code not in (0, None) else None)
        self._status_dirty = True
        if planned:
            log.info("%s: worker pid %d stopped (%s)", slot.name, handle.pid, describe_exit(code))
        elif lc.phase is Phase.FATAL:
            log.error("%s: %s; not restarting until the config changes", slot.name, lc.last_error)
        elif lc.phase is Phase.BACKOFF and lc.restart_at is not None:
            described = describe_exit(code)
            detail = f": {lc.last_error}" if lc.last_error and lc.last_error != described else ""
            log.warning(
                "%s: pid %d: %s%s; restarting in %.1f s%s",
                slot.name,
                handle.pid,
                described,
                detail,
                max(0.0, lc.restart_at - now),
                " (crash-looping)" if lc.policy.crash_looping else "",
            )

    # --- shutdown ---------------------------------------------------------------------

    def _begin_shutdown(self, now: float) -> None:
        self._shutting_down = True
        log.info(
            "shutting down: stopping %d worker(s)", sum(1 for s in self._slots.values() if s.handle)
        )
        for slot in self._slots.values():
            slot.lifecycle.shutdown(now)
        self._status_dirty = True

    def _kill_all(self) -> None:
        for slot in self._slots.values():
            if slot.handle is not None:
                log.warning("%s: killing worker pid %d now", slot.name, slot.handle.pid)
                slot.handle.kill()

    # --- instances ----------------------------------------------------------------------

    def _add_slot(self, entry: InstanceEntry, now: float) -> Slot:
        lc = Lifecycle(timing_from(self.settings), self._rng)
        lc.paused = entry.name in self._choices.paused
        config_path = self.registry.config_path(entry)
        slot = Slot(
            entry=entry,
            config_path=config_path,
            lifecycle=lc,
            log_path=instance_log_path(entry.name, config=None, log_dir=self.log_dir),
            config_print=fingerprint(config_path),
        )
        self._slots[entry.name] = slot
        if entry.enabled and entry.name not in self._choices.stopped:
            lc.start(now)
        return slot

    def _slot(self, name: str) -> Slot:
        slot = self._slots.get(name)
        if slot is None or slot.removed:
            live = sorted(n for n, s in self._slots.items() if not s.removed)
            raise UnknownInstance([name], live, self.registry_path)
        return slot

    def _command(self, name: str, command: str) -> None:
        slot = self._slot(name)
        lc = slot.lifecycle
        now = self._clock()
        if self._shutting_down:
            return
        if command == "start":
            if not slot.entry.enabled:
                raise ConfigError(
                    f"instance {name!r} is disabled in the registry; set enabled = true first",
                    file=self.registry_path,
                    key="instance.enabled",
                )
            self._choices.choose(name, stopped=False)
            lc.start(now)
        elif command == "stop":
            self._choices.choose(name, stopped=True)
            lc.stop(now)
        elif command == "restart":
            self._choices.choose(name, stopped=False)
            if slot.entry.enabled:
                lc.restart(now)
        elif command in ("pause", "resume"):
            paused = command == "pause"
            self._choices.choose(name, paused=paused)
            lc.paused = paused
            if slot.handle is not None:
                slot.handle.send(msg.control("pause" if paused else "resume"))
        log.info("%s: %s requested", name, command)
        self._status_dirty = True

    # --- live reload --------------------------------------------------------------------

    def _check_reload(self, now: float) -> None:
        forced = self._reload_requested.is_set()
        if not forced and now < self._next_reload_check:
            return
        self._reload_requested.clear()
        self._next_reload_check = now + RELOAD_POLL_INTERVAL
        new_print = fingerprint(self.registry_path, self._registry_print)
        registry_changed = new_print != self._registry_print
        changed_configs = [
            slot
            for slot in self._slots.values()
            if not slot.removed
            and fingerprint(slot.config_path, slot.config_print) != slot.config_print
        ]
        if forced or registry_changed:
            self._registry_print = new_print
            self._reload_registry(now)
        elif changed_configs:
            for slot in changed_configs:
                self._config_changed(slot, now)

    def _reload_registry(self, now: float) -> None:
        try:
            registry = Registry.load(self.registry_path, check_configs=False)
        except RegistryError as exc:
            self._last_error = f"registry change not applied: {exc}"
            log.error("%s", self._last_error)
            self._status_dirty = True
            return
        self._last_error = None
        log.info("registry changed: reloading %s", self.registry_path)
        self._apply_settings(registry.supervisor)
        self.registry = registry
        new_entries = {e.name: e for e in registry.instances}
        for name, slot in list(self._slots.items()):
            if name not in new_entries and not slot.removed:
                log.info("%s: removed from the registry; stopping", name)
                slot.removed = True
                slot.lifecycle.stop(now)
        for entry in registry.instances:
            existing = self._slots.get(entry.name)
            if existing is None:
                log.info("%s: added to the registry", entry.name)
                self._add_slot(entry, now)
                continue
            if existing.removed:  # re-added while its old worker still stops
                continue
            slot = existing
            old_entry, slot.entry = slot.entry, entry
            new_path = registry.config_path(entry)
            path_changed = new_path != slot.config_path
            slot.config_path = new_path
            if entry.enabled != old_entry.enabled or path_changed:
                self._entry_changed(slot, now)
            elif fingerprint(slot.config_path, slot.config_print) != slot.config_print:
                self._config_changed(slot, now)
        self._choices.forget_except(set(new_entries))
        self._status_dirty = True

    def _apply_settings(self, settings: SupervisorSettings) -> None:
        old = self.settings
        if settings == old:
            return
        for key in ("state_dir", "log_dir", "metrics_port", "metrics_host", "log_format"):
            if getattr(settings, key) != getattr(old, key):
                log.warning(
                    "[supervisor] %s changed; it takes effect when the supervisor restarts", key
                )
        # Keep what cannot change live, apply the rest (timings, intervals).
        self.settings = settings.model_copy(
            update={
                k: getattr(old, k)
                for k in ("state_dir", "log_dir", "metrics_port", "metrics_host", "log_format")
            }
        )
        timing = timing_from(self.settings)
        for slot in self._slots.values():
            slot.lifecycle.update_timing(timing)

    def _entry_changed(self, slot: Slot, now: float) -> None:
        slot.config_print = fingerprint(slot.config_path)
        lc = slot.lifecycle
        if not slot.entry.enabled:
            log.info("%s: disabled in the registry; stopping", slot.name)
            lc.stop(now)
        elif slot.name not in self._choices.stopped:
            log.info("%s: registry entry changed; (re)starting", slot.name)
            if lc.process_expected:
                lc.restart(now)
            else:
                lc.start(now)
        self._status_dirty = True

    def _config_changed(self, slot: Slot, now: float) -> None:
        slot.config_print = fingerprint(slot.config_path)
        if not slot.entry.enabled or slot.name in self._choices.stopped:
            return
        lc = slot.lifecycle
        try:
            ClientConfig.load(slot.config_path)
        except ConfigError as exc:
            if lc.process_expected:
                lc.last_error = lc.config_problem = f"{CONFIG_NOT_APPLIED}: {exc}"
                log.error("%s: %s", slot.name, lc.last_error)
            else:
                lc.fail_config(str(exc))
                log.error("%s: %s", slot.name, exc)
            self._status_dirty = True
            return
        log.info("%s: config file changed; restarting the worker", slot.name)
        lc.last_error = lc.config_problem = None  # an earlier refused edit is resolved
        if lc.process_expected:
            lc.restart(now)
        else:
            lc.start(now)
        for other in self._slots.values():
            if other.queue_clash and other is not slot and other.lifecycle.phase is Phase.FATAL:
                log.info("%s: a config changed; checking its queue folder again", other.name)
                other.lifecycle.start(now)
        self._status_dirty = True

    # --- status -------------------------------------------------------------------------

    def _maybe_write_status(self, now: float) -> None:
        states = {n: s.state.value for n, s in self._slots.items()}
        if states != self._written_states:
            self._status_dirty = True
        if self._status_dirty or now >= self._next_status:
            self._write_status(now)

    def _write_status(self, now: float, *, exited: bool = False) -> None:
        wall = time.time()
        document = {
            "format": STATUS_FORMAT,
            "supervisor": {
                "pid": os.getpid(),
                "create_time": self._create_time,
                "started_at": self._started_wall,
                "updated_at": wall,
                "registry": str(self.registry_path),
                "status_interval": self.settings.status_interval,
                "metrics_url": self.metrics_url,
                "log_dir": str(self.log_dir),
                "last_error": self._last_error,
                "exited": exited,
            },
            "instances": [slot.record(now, wall) for slot in self._slots.values()],
        }
        self._document = document
        if not write_status(self.status_path, document):
            log.debug("status.json busy (a reader holds it); retrying next interval")
        self._written_states = {n: s.state.value for n, s in self._slots.items()}
        self._status_dirty = False
        self._next_status = now + self.settings.status_interval


def _own_create_time() -> float | None:
    try:
        return float(psutil.Process().create_time())
    except psutil.Error:  # denied on a locked-down host: staleness then uses the pid only
        return None


def _same_station(one: Slot, other: Slot) -> bool:
    """Another name for the same station: a rename keeps the config (and so the queue)."""
    return one.config_path == other.config_path or (
        one.queue_path is not None and one.queue_path == other.queue_path
    )


def _warn_of_stranded_reports(slot: Slot) -> None:
    """A station taken out of the registry before its queue drained: say what is left."""
    if slot.queue_path is None:
        return
    pending = count_queue_files(slot.queue_path / "pending")
    if pending:
        log.warning(
            "%s: removed from the registry with %d report(s) not yet uploaded in %s; they are "
            "sent only when the station runs again: add it back to the registry, or run it "
            "once by hand (pywats-client run --config %s) until its queue is empty",
            slot.name,
            pending,
            slot.queue_path / "pending",
            slot.config_path,
        )
