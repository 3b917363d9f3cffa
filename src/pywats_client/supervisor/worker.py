"""The worker process: one instance's ``WATSClient`` under a supervisor.

:func:`worker_main` is the ``multiprocessing`` (spawn) target. It configures
logging, loads the config, takes the instance lock *inside* the worker (a
stray old worker makes the new one refuse, naming the holder), then runs the
client in asyncio. Heartbeats go out from the asyncio loop itself, so a hung
loop stops beating and the supervisor notices. A reader thread receives
commands (stop/pause/resume) and notices a dead supervisor (EOF on its pipe):
the worker then stops gracefully and is gone within a few seconds, so killing
the supervisor with SIGKILL leaves no orphans.

Exit codes: 0 stopped on request, 1 crashed, 75 instance locked by another
process, 78 configuration error (no restart until it changes), 79 orphaned
(supervisor vanished and graceful stop overran).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, cast

import psutil

from pywats_client._logging import (
    LOG_BACKUPS,
    LOG_MAX_BYTES,
    LogFormat,
    configure_logging,
    redact,
    register_secret,
)
from pywats_client.supervisor import _protocol as msg
from pywats_client.supervisor._states import EXIT_CONFIG, EXIT_LOCKED
from pywats_client.supervisor._testhooks import WORKER_RUNTIME_ENV, TestHooks

__all__ = [
    "DEFAULT_RUNTIME",
    "EXIT_CRASHED",
    "EXIT_ORPHANED",
    "EXIT_TERMINATED",
    "WorkerSpec",
    "worker_main",
]

#: Module that provides ``WATSClient`` and ``acquire_instance_lock``.
DEFAULT_RUNTIME = "pywats_client.core.client"
EXIT_CRASHED = 1
EXIT_ORPHANED = 79
EXIT_TERMINATED = 143
#: Seconds an orphaned worker gives its client to stop, and then the hard
#: deadline after which it exits no matter what (its loop may be hung).
ORPHAN_STOP_TIMEOUT = 3.0
ORPHAN_EXIT_AFTER = 5.0
_POSIX = os.name == "posix"

log = logging.getLogger("pywats_client.worker")


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, picklable (it crosses the spawn boundary)."""

    name: str
    config_path: Path
    log_file: Path
    supervisor_pid: int
    heartbeat_interval: float = 1.0
    stop_timeout: float = 10.0
    log_level: str | None = None  # None: the config's log_level
    log_format: LogFormat = "text"
    log_max_bytes: int = LOG_MAX_BYTES
    log_backups: int = LOG_BACKUPS
    runtime: str = DEFAULT_RUNTIME
    start_paused: bool = False


class _Client(Protocol):
    """What the worker uses of ``WATSClient`` (docs/internals.md)."""

    async def start(self) -> None: ...
    async def stop(self, timeout: float = ...) -> None: ...
    def snapshot(self) -> Any: ...
    def pause_uploads(self) -> None: ...
    def resume_uploads(self) -> None: ...
    def stop_intake(self) -> None: ...


def _restart_required(client: _Client) -> str | None:
    """Why the client wants a fresh process (e.g. stuck converter threads), if it says so."""
    value = getattr(client, "restart_required", None)
    return str(value) if value else None


def _runtime_name(spec: WorkerSpec) -> str:
    return os.environ.get(WORKER_RUNTIME_ENV) or spec.runtime


def worker_main(spec: WorkerSpec, commands: Connection, events: Connection) -> None:
    """Process entry point; never returns (exits with a meaningful code)."""
    # Ctrl+C reaches every process of the console; the supervisor decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, signal.SIG_IGN)
    code = EXIT_CRASHED
    try:
        code = _run(spec, commands, events)
    except BaseException:  # last resort: record why, then exit
        with contextlib.suppress(Exception):
            log.exception("worker failed")
    finally:
        _exit(code)


def _exit(code: int) -> None:
    """Flush logs and leave at once; stuck non-daemon threads must not keep us alive."""
    with contextlib.suppress(Exception):
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


class _Events:
    """Sending side to the supervisor; remembers when the supervisor is gone."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.broken = False

    def send(self, message: Mapping[str, Any]) -> bool:
        if self.broken:
            return False
        try:
            self._conn.send(message)
        except (OSError, EOFError, ValueError):
            self.broken = True
        return not self.broken


def _run(spec: WorkerSpec, commands: Connection, events_conn: Connection) -> int:
    configure_logging(
        level=spec.log_level or "INFO",
        log_file=spec.log_file,
        fmt=spec.log_format,
        instance=spec.name,
        max_bytes=spec.log_max_bytes,
        backups=spec.log_backups,
    )
    events = _Events(events_conn)
    hooks = TestHooks.from_env(spec.name)
    log.info("worker starting (pid %d, config %s)", os.getpid(), spec.config_path)
    if hooks.active:
        log.warning("TEST HOOKS ACTIVE: %s (never set these in production)", hooks)
        hooks.install()
    if hooks.crash_at_start:
        events.send(msg.stopping("crashed at start (test hook PYWATS_TEST_CRASH_AT_START)"))
        return EXIT_CRASHED
    return asyncio.run(_Worker(spec, commands, events, hooks).serve())


class _ResourceSampler:
    """RSS and CPU% of this process and its upload helper for heartbeats (psutil, cheap)."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)
        self._helper: psutil.Process | None = None

    def sample(self, helper_pid: int | None = None) -> tuple[int, float]:
        try:
            rss, cpu = int(self._proc.memory_info().rss), float(self._proc.cpu_percent(None))
        except psutil.Error:  # e.g. AccessDenied on a locked-down host
            return 0, 0.0
        helper, new = self._helper_process(helper_pid)
        if helper is not None:
            try:
                rss += int(helper.memory_info().rss)
                if not new:  # a first reading covers microseconds: a meaningless percentage
                    cpu += float(helper.cpu_percent(None))
            except psutil.Error:  # it just ended
                self._helper = None
        return rss, cpu

    def _helper_process(self, pid: int | None) -> tuple[psutil.Process | None, bool]:
        """The helper's process, and whether it is new since the last beat."""
        if pid is None:
            self._helper = None
        elif self._helper is None or self._helper.pid != pid:
            try:
                self._helper = psutil.Process(pid)
                self._helper.cpu_percent(None)  # its CPU counts from the next beat
            except psutil.Error:
                self._helper = None
            return self._helper, True
        return self._helper, False


class _CommandReader(threading.Thread):
    """Reads supervisor commands; on EOF (supervisor gone) starts the orphan exit."""

    def __init__(self, conn: Connection, deliver: Callable[[str], None]) -> None:
        super().__init__(name="pywats-worker-commands", daemon=True)
        self._conn = conn
        self._deliver = deliver
        self.stop_requested = threading.Event()

    def run(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            kind = message.get("type") if isinstance(message, dict) else None
            if kind in msg.CONTROL_TYPES:
                if kind == "stop":
                    self.stop_requested.set()
                self._deliver(str(kind))
        log.warning("supervisor pipe closed: supervisor gone, stopping")
        self.stop_requested.set()
        self._deliver("orphaned")
        # The loop may be hung: leave no orphan whatever happens.
        time.sleep(ORPHAN_EXIT_AFTER)
        log.error(
            "graceful stop overran %.0f s after the supervisor vanished; exiting",
            ORPHAN_EXIT_AFTER,
        )
        _exit(EXIT_ORPHANED)


class _Worker:
    def __init__(
        self,
        spec: WorkerSpec,
        commands: Connection,
        events: _Events,
        hooks: TestHooks,
    ) -> None:
        self.spec = spec
        self.config: Any = None
        self.commands = commands
        self.events = events
        self.hooks = hooks
        self.inbox: asyncio.Queue[str] = asyncio.Queue()
        self.client: _Client | None = None
        self.restart_reason: str | None = None

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()

        def deliver(kind: str) -> None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(self.inbox.put_nowait, kind)

        reader = _CommandReader(self.commands, deliver)
        reader.start()
        self._install_sigterm(deliver, reader)
        # Beat from the start: the supervisor knows at once that this process lives,
        # while the config and the client's modules load (the loop blocks briefly for
        # those imports; a real hang still stops the beats).
        beats = asyncio.create_task(self._beat(), name="heartbeat")
        await asyncio.sleep(0)
        try:
            return await self._serve_client()
        finally:
            beats.cancel()

    def _load_config(self) -> int | None:
        """Load the config; an exit code if it is unusable."""
        from pywats_client.core.config import ClientConfig
        from pywats_client.errors import ConfigError

        try:
            config = ClientConfig.load(self.spec.config_path)
        except ConfigError as exc:
            log.error("cannot start: %s", exc)
            self.events.send(msg.stopping(redact(str(exc))))
            return EXIT_CONFIG
        register_secret(config.api_token.get_secret_value())
        register_secret(config.effective_token().get_secret_value())
        if self.spec.log_level is None:
            logging.getLogger().setLevel(config.log_level)
        self.config = config
        return None

    async def _serve_client(self) -> int:
        from pywats_client.errors import ConfigError, InstanceLockedError

        failed = self._load_config()
        if failed is not None:
            return failed
        runtime = importlib.import_module(_runtime_name(self.spec))
        try:
            lock = runtime.acquire_instance_lock(self.config)
        except (InstanceLockedError, ConfigError) as exc:
            log.error("cannot start: %s", exc)
            self.events.send(msg.stopping(redact(str(exc))))
            return EXIT_LOCKED if isinstance(exc, InstanceLockedError) else EXIT_CONFIG
        try:
            return await self._run_client(cast(_Client, runtime.WATSClient(self.config)))
        finally:
            release = getattr(lock, "release", None)
            if callable(release):
                with contextlib.suppress(Exception):
                    release()

    async def _run_client(self, client: _Client) -> int:
        from pywats_client.errors import ConfigError

        self.client = client
        if self.spec.start_paused:  # before start(): the uploader must not send anything first
            client.pause_uploads()
        try:
            await client.start()
        except Exception as exc:
            log.exception("client failed to start")
            self.events.send(msg.stopping(redact(f"client failed to start: {exc}")))
            return EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_CRASHED
        log.info("client started")
        self.events.send(msg.ready())
        reason = await self._commands(client)
        log.info("stopping (%s)", reason)
        stop_timeout = ORPHAN_STOP_TIMEOUT if reason == "orphaned" else self.spec.stop_timeout
        client.stop_intake()
        await client.stop(timeout=max(0.5, stop_timeout * 0.8))
        if reason == "restart-required":
            why = redact(f"restart required: {self.restart_reason}")
            log.warning("exiting so the supervisor starts a fresh process (%s)", why)
            self.events.send(msg.stopping(why))
            return EXIT_CRASHED
        self.events.send(msg.stopping(reason))
        log.info("worker stopped")
        return 0

    async def _commands(self, client: _Client) -> str:
        while True:
            kind = await self.inbox.get()
            if kind == "pause":
                log.info("uploads paused by the supervisor")
                client.pause_uploads()
            elif kind == "resume":
                log.info("uploads resumed by the supervisor")
                client.resume_uploads()
            elif kind in ("stop", "orphaned", "terminated", "restart-required"):
                return {"stop": "stop requested", "terminated": "SIGTERM"}.get(kind, kind)

    def _install_sigterm(self, deliver: Callable[[str], None], reader: _CommandReader) -> None:
        """First SIGTERM: graceful stop. SIGTERM after a stop request: exit now (escalation)."""

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if reader.stop_requested.is_set():
                _exit(EXIT_TERMINATED)
            reader.stop_requested.set()
            deliver("terminated")

        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGTERM, on_sigterm)

    async def _beat(self) -> None:
        """Send heartbeats from the loop itself: if the loop hangs, beats stop."""
        loop = asyncio.get_running_loop()
        sampler = _ResourceSampler()
        interval = self.spec.heartbeat_interval
        started = loop.time()
        next_at = started
        warned = False
        while True:
            if self.hooks.hang_after is not None and loop.time() - started >= self.hooks.hang_after:
                log.warning("test hook PYWATS_TEST_HANG_AFTER: blocking the event loop")
                while True:
                    time.sleep(3600)  # deliberately blocks the loop (test hook)
            # POSIX re-parents an orphan. Windows does not, and a launcher process
            # (a venv's python.exe) between supervisor and worker would make every
            # worker look orphaned there; the pipe below tells a dead supervisor anyway.
            if _POSIX and os.getppid() != self.spec.supervisor_pid:
                log.warning("parent process changed: supervisor gone, stopping")
                self.inbox.put_nowait("orphaned")
            client = self.client
            snapshot: dict[str, Any] = {}
            if client is not None:
                try:
                    snapshot = client.snapshot().to_dict()
                except Exception:
                    if not warned:
                        log.exception("snapshot failed; sending an empty one")
                        warned = True
            if client is not None and self.restart_reason is None:
                self.restart_reason = _restart_required(client)
                if self.restart_reason is not None:
                    self.inbox.put_nowait("restart-required")
            rss, cpu = sampler.sample(snapshot.get("upload_helper_pid"))
            if not self.events.send(msg.heartbeat(os.getpid(), time.time(), snapshot, rss, cpu)):
                self.inbox.put_nowait("orphaned")
            next_at += interval
            now = loop.time()
            if next_at < now:  # the loop was busy: do not burst to catch up
                next_at = now + interval
            await asyncio.sleep(next_at - now)
