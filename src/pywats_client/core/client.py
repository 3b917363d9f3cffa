"""WATSClient: the orchestrator of one station instance (the seed's public API).

``WATSClient(config)`` builds nothing that runs; ``await start()`` starts, in
order, the queue store, the connection service, the uploader (QueueService),
the converters, crash recovery of the intake, the file watcher and the intake
loop. ``await stop(timeout)`` undoes it gracefully: stop taking files, let the
batch in progress finish, drain in-flight uploads within the timeout, close
files and the HTTP client.

The instance lock is not taken here: the worker process (or ``pywats-client
run``) calls :func:`acquire_instance_lock` first, so a library user can run a
client in-process without a lock file if they manage exclusivity themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from pywats_client.converters import ConverterManager
from pywats_client.core._instance_lock import InstanceLock, acquire_instance_lock
from pywats_client.core.config import ClientConfig
from pywats_client.core.snapshot import ClientSnapshot, parked_fields
from pywats_client.queue import NewReport, QueueStore
from pywats_client.services.api_client import WATSApiClient
from pywats_client.services.connection import ConnectionService
from pywats_client.services.file_watcher import FileWatcher
from pywats_client.services.intake import IntakePipeline
from pywats_client.services.queue import QueueService

__all__ = ["InstanceLock", "WATSClient", "acquire_instance_lock"]

log = logging.getLogger(__name__)


def _make_item(report: dict[str, Any], source_name: str, sha256: str, converter: str) -> NewReport:
    return NewReport(
        report=report, source_name=source_name, source_sha256=sha256, converter=converter
    )


class WATSClient:
    """Runs one instance: watch -> convert -> queue -> upload, with status for heartbeats."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.store: QueueStore | None = None
        self.api: WATSApiClient | None = None
        self.connection: ConnectionService | None = None
        self.queue: QueueService | None = None
        self.converters: ConverterManager | None = None
        self.watcher: FileWatcher | None = None
        self.intake: IntakePipeline | None = None
        self._started = False
        self._intake_stopped = False
        self._uploads_paused = False
        self._load_warnings: list[str] = []
        #: Each service's last error and since when it shows, so the newest wins.
        self._errors: dict[str, tuple[str, float]] = {}
        self._closed = False

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"WATSClient({self.config.instance_name!r}, {state})"

    # --- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        """Start every service; files already in the watch folders are processed."""
        if self._started:
            return
        config = self.config
        self.store = await asyncio.to_thread(
            QueueStore, config.queue_dir, archive_sent=config.archive_sent
        )
        self.api = WATSApiClient(config)
        self.connection = ConnectionService(config, self.api)
        self.queue = QueueService(
            config, self.api, connection=self.connection, store=self.store, helper_process=True
        )
        self.converters = ConverterManager(config)
        problems = await asyncio.to_thread(self.converters.load)
        self._load_warnings = [
            str(p) if p.origin == "config" else f"converter not loaded: {p}" for p in problems
        ]
        for warning in self._load_warnings:
            log.warning("%s", warning)

        intake: IntakePipeline | None = None

        def skip(path: Any, size: int, mtime_ns: int) -> bool:
            return intake is not None and intake.is_processed(path, size, mtime_ns)

        queue = self.queue
        try:
            # A Done/Error folder that is a watch folder is refused here (ConfigError).
            self.watcher = FileWatcher(config, skip=skip)
            intake = IntakePipeline(
                config, self.watcher, self.converters, self.store, _make_item, on_queued=queue.wake
            )
            self.intake = intake
            # Recovery reads what the queue held at the crash before uploads change it.
            await intake.recover()
            await self.connection.start()
            await self.queue.start()
            if self._uploads_paused:
                self.queue.pause()
            if not self._intake_stopped:
                await self.watcher.start()
                await intake.start()
        except BaseException:
            await self._close(timeout=2.0)
            raise
        self._started = True
        log.info(
            "instance %r started: watching %s, queue %s",
            config.instance_name,
            ", ".join(str(p) for p in config.watch_dirs) or "(no folders)",
            config.queue_dir,
        )

    def stop_intake(self) -> None:
        """Take no new files (step 1 of a graceful stop); uploads go on."""
        self._intake_stopped = True
        if self.intake is not None:
            self.intake.stop_taking()
        if self.watcher is not None:
            self.watcher.pause()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully within about ``timeout`` seconds; safe to call twice."""
        if self.store is None or self._closed:
            return
        self.stop_intake()
        await self._close(timeout)
        self._closed = True
        self._started = False
        log.info("instance %r stopped", self.config.instance_name)

    async def _close(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout

        def left(share: float = 1.0) -> float:
            return max(0.1, (deadline - time.monotonic()) * share)

        if self.intake is not None:
            await self.intake.stop(timeout=left(0.5))
        if self.watcher is not None:
            await self.watcher.stop()
        if self.queue is not None:
            with contextlib.suppress(Exception):
                await self.queue.stop(timeout=left())
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.stop()
        if self.api is not None:
            with contextlib.suppress(Exception):
                await self.api.aclose()

    # --- control ---------------------------------------------------------------------

    def pause_uploads(self) -> None:
        self._uploads_paused = True
        if self.queue is not None:
            self.queue.pause()

    def resume_uploads(self) -> None:
        self._uploads_paused = False
        if self.queue is not None:
            self.queue.resume()

    @property
    def running(self) -> bool:
        return self._started

    @property
    def restart_required(self) -> str | None:
        """Why this process should be restarted (stuck converter threads), else None.

        The worker stops and exits non-zero when this is set, so its supervisor
        starts a fresh process.
        """
        if self.intake is not None and self.intake.restart_required:
            return self.intake.restart_required
        if not self._started or self._intake_stopped:
            return None
        if self.intake is not None and not self.intake.running:
            return self.intake.stats.last_error or "the intake loop stopped unexpectedly"
        if self.watcher is not None and not self.watcher.running:
            return "the file watcher stopped unexpectedly"
        return None

    # --- status ------------------------------------------------------------------

    def _newest_error(self, errors: dict[str, str | None]) -> tuple[str, float] | None:
        """The error that showed last, with since when.

        An outage that starts after a bad file must not hide behind that file's
        old error (and the other way round): each service's error is stamped
        when its text changes, and the latest stamp wins. Ties keep the order
        of ``errors`` (intake, queue, connection).
        """
        now = time.time()
        for source, text in errors.items():
            if not text:
                self._errors.pop(source, None)
            elif self._errors.get(source, ("", 0.0))[0] != text:
                self._errors[source] = (text, now)
        shown = [self._errors[source] for source in errors if source in self._errors]
        return max(shown, key=lambda error: error[1], default=None)

    def snapshot(self) -> ClientSnapshot:
        """Counters and states now (cheap: no I/O beyond the queue's maintained counts)."""
        snap = ClientSnapshot()
        warnings = list(self._load_warnings)
        errors: dict[str, str | None] = {}
        if self.watcher is not None:
            snap.files_seen = self.watcher.files_seen
            warnings += self.watcher.problems
            snap.in_error, snap.error_folders = parked_fields(self.watcher.parked)
        if self.intake is not None:
            stats = self.intake.stats
            snap.converted = stats.converted
            snap.errored = stats.errored
            snap.queued = stats.reports_queued
            snap.backpressure = stats.backpressure
            snap.abandoned_conversions = self.intake.abandoned
            warnings += stats.warnings.values()
            errors["intake"] = stats.last_error
        if self.store is not None:
            counts = self.store.counts()
            snap.pending = counts.pending
            snap.failed = counts.failed
            snap.in_backoff = counts.in_backoff
            snap.in_flight = counts.in_flight
            snap.quarantined = counts.quarantined
            if counts.quarantined:
                warnings.append(
                    f"{counts.quarantined} queue file(s) in {self.store.quarantine_dir} cannot "
                    "be read and are not sent; the .reason.txt beside each says why and what "
                    "to do"
                )
        if self.queue is not None:
            snap.uploaded = self.queue.uploaded
            snap.rejected = self.queue.rejected
            snap.uploads = "paused" if self._uploads_paused else self.queue.state
            snap.upload_helper_pid = self.queue.helper_pid
            errors["queue"] = self.queue.last_error
        if self.connection is not None:
            snap.connection = self.connection.state
            snap.connection_since = self.connection.since
            snap.server_version = self.connection.server_version
            warnings += self.connection.warnings
            errors["connection"] = self.connection.last_error
        snap.intake_paused = self._intake_stopped or (
            self.watcher is not None and self.watcher.paused
        )
        restart = self.restart_required
        if restart:
            warnings.append(restart)
        newest = self._newest_error(errors)
        if newest is not None:
            snap.last_error, snap.last_error_at = newest
        snap.warnings = list(dict.fromkeys(warnings))
        return snap
