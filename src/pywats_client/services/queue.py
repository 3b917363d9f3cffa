"""``QueueService``: uploads the queued reports of one instance, retrying until the server has them.

The loop claims the next due report from the :class:`QueueStore`, uploads it
(at most ``max_concurrent_uploads`` at once, in queue order) and settles it by
what the server said:

* accepted -> removed from the queue (or archived in ``sent/``);
* 5xx, 408, 429, timeouts -> attempt counted and persisted, retried after a
  capped exponential backoff with full jitter (``retry`` policy), never before
  ``Retry-After``; a 429 holds the whole uploader until then. Past
  ``retry.max_attempts``, or at once with ``retry_failed: false``, the report
  goes to ``failed/``;
* a network error while the :class:`ConnectionService` says the server is
  gone -> no attempt counted: uploads wait and resume the moment it is back;
* rejected (400 and other 4xx) -> ``failed/`` with the server's reason;
* 401/403 -> nothing is parked: all uploads pause ("unauthorized") and one
  report is tried again every ``unauthorized_retry`` seconds (or on resume).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import random
import time
from typing import Any

from pywats_client.core.config import ClientConfig
from pywats_client.core.snapshot import UploadState
from pywats_client.errors import (
    DiskFullError,
    RejectedError,
    ReportRejectedError,
    ServerUnavailableError,
    UnauthorizedError,
)
from pywats_client.queue import QueueItem, QueueStore
from pywats_client.services._upload_helper import HelperGone, UploadHelper
from pywats_client.services.api_client import WATSApiClient, report_body
from pywats_client.services.connection import ConnectionService

__all__ = ["QueueService", "backoff_delay"]

log = logging.getLogger("pywats_client.upload")

#: Pause of all uploads after the queue folder could not be written (disk full...).
STORAGE_HOLD = 5.0
#: Longest sleep of an idle loop before it looks at the queue folder again.
IDLE_RECHECK = 5.0
#: Seconds between folder syncs that make removals of accepted reports durable. A
#: power cut inside this window only means a report is sent again (same id: replaced).
FLUSH_INTERVAL = 0.5


def backoff_delay(
    attempts: int,
    *,
    initial: float,
    maximum: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds before attempt ``attempts + 1``: full jitter over a capped exponential.

    ``retry_after`` (from the server) is a minimum.
    """
    ceiling = min(maximum, initial * 2.0 ** min(max(attempts - 1, 0), 62))
    delay = (rng or random).uniform(0.0, ceiling)
    return max(delay, retry_after or 0.0)


class QueueService:
    """The uploader of one instance (seed API: ``QueueService(config, api_client)``).

    ``api_client`` may be ``None`` (one is built from ``config`` and closed at
    stop); ``connection`` lets uploads wait for the server instead of burning
    attempts; ``store`` defaults to the queue in ``config.queue_path``.
    ``helper_process`` lets the HTTP part of uploads run in a child process as
    ``config.upload_helper`` says (the worker's own choice; off by default, as
    a process cannot share an ``api_client`` built with a test transport).
    """

    def __init__(
        self,
        config: ClientConfig,
        api_client: WATSApiClient | None = None,
        *,
        connection: ConnectionService | None = None,
        store: QueueStore | None = None,
        unauthorized_retry: float = 60.0,
        rng: random.Random | None = None,
        helper_process: bool = False,
    ) -> None:
        self.config = config
        self._api = api_client
        self._owns_api = api_client is None
        self._connection = connection
        self._store = store or QueueStore(config.queue_dir, archive_sent=config.archive_sent)
        self._store.max_delay = max(self._store.max_delay, config.retry.max_delay)
        self._unauthorized_retry = unauthorized_retry
        self._helper = (
            UploadHelper(config) if helper_process and config.upload_helper != "never" else None
        )
        self._idle_since: float | None = None
        self._rng = rng or random.Random()
        self._kick = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._uploading = 0  # uploads waiting for the server (the bounded part)
        self._checking = 0  # connection checks after a network error, in progress
        self._accepted: list[QueueItem] = []  # accepted by the server, not yet removed
        self._ready: collections.deque[QueueItem] = collections.deque()  # claimed ahead
        self._settling = False
        self._runner: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._paused = False
        self._unauthorized = False
        self._unauthorized_until = 0.0
        self._hold_until = 0.0
        self._state: UploadState = "stopped"
        self.uploaded = 0
        self.rejected = 0
        self.retried = 0
        self.dead_lettered = 0
        self.last_error: str | None = None
        #: Whether last_error describes a passing condition (network, token, disk)
        #: that the next accepted upload proves over; a rejection stays shown.
        self._error_passes = False

    # --- public API ------------------------------------------------------------------

    @property
    def store(self) -> QueueStore:
        return self._store

    @property
    def state(self) -> UploadState:
        return self._state

    @property
    def helper_pid(self) -> int | None:
        """The pid of the upload helper process while one runs (``upload_helper``)."""
        return self._helper.pid if self._helper is not None else None

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        if self._api is None:
            self._api = WATSApiClient(self.config)
        self._store.add_listener(self._kick_threadsafe)
        if self._connection is not None:
            self._connection.add_listener(self._on_connection)
        self._runner = asyncio.create_task(self._run(), name="pywats-uploader")
        if self._helper is not None:
            self._helper.uploader_started()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking reports; let in-flight uploads finish within ``timeout`` s."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping = True
        self._kick.set()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        await self._settle_accepted()  # whatever a cancelled settler left
        if self._helper is not None:
            await self._helper.close()
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self._store.flush, keep_spares=False)
        self._store.remove_listener(self._kick_threadsafe)
        if self._connection is not None:
            self._connection.remove_listener(self._on_connection)
        if self._owns_api and self._api is not None:
            await self._api.aclose()
            self._api = None
        self._state = "stopped"

    def pause(self) -> None:
        """Hold uploads (the queue keeps filling); in-flight uploads finish."""
        self._paused = True
        self._kick.set()

    def resume(self) -> None:
        """Undo :meth:`pause`; also retries at once after a 401/403 pause."""
        self._paused = False
        self._unauthorized_until = 0.0
        self._kick.set()

    def wake(self) -> None:
        """New reports were queued: look now rather than at the next timer."""
        self._kick.set()

    async def get_status(self) -> dict[str, Any]:
        store = self._store
        counts, read_problem = await asyncio.to_thread(
            lambda: (store.counts(), store.read_problem())
        )
        return {
            "pending": counts.pending,
            "failed": counts.failed,
            "in_flight": counts.in_flight,
            "in_backoff": counts.in_backoff,
            "quarantined": counts.quarantined,
            "uploaded": self.uploaded,
            "rejected": self.rejected,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "state": self._current_state(),
            "held_for_s": round(max(0.0, self._hold_until - time.monotonic()), 3),
            "last_error": self.last_error or read_problem,
        }

    # --- signals ---------------------------------------------------------------------

    def _kick_threadsafe(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._kick.set)

    def _on_connection(self, state: str) -> None:
        self._kick.set()

    def _current_state(self) -> UploadState:
        if self._runner is None:
            return "stopped"
        return self._state

    # --- the loop --------------------------------------------------------------------

    def _held(self) -> tuple[UploadState, float] | None:
        """Why no upload may start now and for how long (``inf``: until kicked)."""
        now = time.monotonic()
        if not self.config.auto_submit:
            return "disabled", math.inf
        if self._paused:
            return "paused", math.inf
        if not self.config.service_address:
            return "offline", math.inf
        if self._unauthorized and now < self._unauthorized_until:
            return "unauthorized", self._unauthorized_until - now
        if now < self._hold_until:
            return "backoff", self._hold_until - now
        conn = self._connection
        if self._checking or (conn is not None and conn.state in ("disconnected", "offline")):
            return "disconnected", math.inf
        return None

    def _free_slots(self) -> int:
        limit = 1 if self._unauthorized else self.config.max_concurrent_uploads
        return limit - self._uploading

    async def _run(self) -> None:
        flusher = asyncio.create_task(self._flush_regularly(), name="pywats-queue-flush")
        try:
            await self._claim_and_upload()
        finally:
            await self._release_ready()
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher

    async def _claim_and_upload(self) -> None:
        while not self._stopping:
            self._kick.clear()
            held = self._held()
            if held is not None:
                await self._release_ready()
                self._state, wait = held
                await self._note_idle()
                await self._wait(min(wait, IDLE_RECHECK) if self._helper else wait)
                continue
            concurrency = self.config.max_concurrent_uploads
            more_due = True
            if len(self._ready) < concurrency:
                # claim ahead, so an upload slot that frees takes its next report at once
                try:
                    claimed = await self._claim(2 * concurrency - len(self._ready))
                except (OSError, DiskFullError) as exc:
                    self._storage_trouble(exc)
                    continue
                self._ready.extend(claimed)
                more_due = bool(claimed)
            if not self._ready:
                due_in = self._store.seconds_until_due()
                if not self._tasks:
                    self._state = "idle" if due_in is None else "backoff"
                    await self._note_idle()
                await self._wait(IDLE_RECHECK if due_in is None else min(due_in, IDLE_RECHECK))
                continue
            self._state = "unauthorized" if self._unauthorized else "uploading"
            while (item := self._take_ready()) is not None:
                task = asyncio.create_task(self._upload_in_turn(item), name="pywats-upload")
                self._tasks.add(task)
                task.add_done_callback(self._upload_done)
            if not more_due:
                await self._wait(IDLE_RECHECK)  # nothing else due: until a slot frees
            elif len(self._ready) >= concurrency:
                await self._wait(math.inf)  # until the claimed-ahead reports run low

    async def _claim(self, limit: int) -> list[QueueItem]:
        """Claim on the loop itself while that only reads small files; the rest in a thread.

        A hop to a thread and back costs more than reading a few queued
        reports, and more again while uploads keep the loop busy (the two
        threads trade the interpreter lock at every system call): claiming here
        made uploading alone about 70 % faster (docs/benchmarks.md). Listing
        ``pending/``, and a file that cannot be read or decoded (a failing disk
        may block; a quarantine fsyncs), are left to the claim in a thread.
        """
        claimed = self._store.claim_many(limit, scan=False)
        if claimed:
            return claimed
        return await asyncio.to_thread(self._store.claim_many, limit)

    def _take_ready(self) -> QueueItem | None:
        """The next claimed report, if an upload may start now (takes its slot)."""
        if self._stopping or not self._ready or self._free_slots() <= 0 or self._held() is not None:
            return None
        item = self._ready.popleft()
        self._uploading += 1
        self._idle_since = None
        if self._helper is not None:
            self._helper.note_upload()
        if len(self._ready) < self.config.max_concurrent_uploads:
            self._kick.set()  # the claimer tops the reports up
        return item

    async def _upload_in_turn(self, item: QueueItem) -> None:
        """Upload ``item``, then the next ready report, and so on, on this task.

        Going straight on to the next report keeps each keep-alive connection
        busy, as a plain loop of requests would, instead of waiting for the
        claiming loop to start a new task.
        """
        next_item: QueueItem | None = item
        while next_item is not None:
            await self._upload(next_item)
            next_item = self._take_ready()

    async def _release_ready(self) -> None:
        """Give back reports claimed ahead (in memory only: they never left pending/)."""
        if self._ready:
            items, self._ready = list(self._ready), collections.deque()
            await asyncio.to_thread(self._store.release_many, items)

    async def _flush_regularly(self) -> None:
        """Make removals of accepted reports durable in batches (one folder fsync each)."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await asyncio.to_thread(self._store.flush)
            except OSError as exc:
                log.warning("cannot sync the queue folder %s: %s", self._store.path, exc)

    async def _note_idle(self) -> None:
        """Nothing uploading: an "auto" upload helper stops once idle long enough."""
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        if self._helper is not None:
            await self._helper.note_idle(now - self._idle_since)

    def _upload_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._kick.set()

    async def _wait(self, seconds: float) -> None:
        if self._stopping:
            return
        timeout = None if math.isinf(seconds) else max(seconds, 0.0)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._kick.wait(), timeout)

    # --- one upload ------------------------------------------------------------------

    async def _send(self, item: QueueItem) -> None:
        """The HTTP part of an upload: the only part that holds an upload slot."""
        assert self._api is not None
        try:
            helper = self._helper
            if helper is not None and helper.usable:
                # if it ends before answering, the report goes from here (same id: replaced)
                with contextlib.suppress(HelperGone):
                    await helper.submit(report_body(item.report))
                    return
            await self._api.submit_report(item.report)
        finally:
            self._uploading -= 1
            self._kick.set()

    async def _upload(self, item: QueueItem) -> None:
        try:
            try:
                await self._send(item)
            except UnauthorizedError as exc:
                self._enter_unauthorized(str(exc))  # before any await: no new uploads start
                await asyncio.to_thread(self._store.release, item)
            except ServerUnavailableError as exc:
                await self._transient(item, exc)
            except RejectedError as exc:
                status = exc.status_code if isinstance(exc, ReportRejectedError) else None
                await self._park(item, str(exc), status, rejected=True)
            except Exception as exc:  # a bug must not lose the report or stop the loop
                log.exception("unexpected error while uploading report %s", item.id)
                await self._transient(
                    item, ServerUnavailableError(f"unexpected {type(exc).__name__}: {exc}")
                )
            else:
                if self._unauthorized:
                    log.info("the server accepts this instance's token again; uploading")
                    self._unauthorized = False
                if self._error_passes:
                    self.last_error, self._error_passes = None, False
                self._accepted.append(item)
        except asyncio.CancelledError:
            self._store.release(item)
            raise
        except (OSError, DiskFullError) as exc:  # the queue folder failed (disk full, I/O)
            self._store.release(item)
            self._storage_trouble(exc)
        else:
            if not self._settling:  # settle on a task of its own: this one goes on uploading
                task = asyncio.create_task(self._settle_accepted(), name="pywats-settle")
                self._tasks.add(task)
                task.add_done_callback(self._upload_done)

    async def _settle_accepted(self) -> None:
        """Remove accepted reports from the queue, many per log line.

        Runs as a task of its own, so the reports accepted in the same turn of
        the loop settle together. Completing is a rename (the folder fsync that
        makes it durable, and the deletes, come from :meth:`_flush_regularly`,
        in a thread), so it runs on the loop: cheaper than the hop to a thread.
        """
        if self._settling:
            return
        self._settling = True
        try:
            while self._accepted:
                batch, self._accepted = self._accepted, []
                settled: list[QueueItem] = []
                try:
                    for item in batch:
                        self._store.complete(item, flush_when_full=False)
                        settled.append(item)
                except (OSError, DiskFullError) as exc:
                    for item in batch[len(settled) :]:  # still in pending/: sent again (same id)
                        self._store.release(item)
                    self._storage_trouble(exc)
                if settled:
                    self.uploaded += len(settled)
                    # the line an operator greps to confirm a board reached WATS
                    log.info(
                        "accepted by the server: %s",
                        ", ".join(f"{i.id} (sn {i.report.get('sn')})" for i in settled),
                    )
        finally:
            self._settling = False

    def _enter_unauthorized(self, message: str) -> None:
        if not self._unauthorized or time.monotonic() >= self._unauthorized_until:
            log.error(
                "uploads paused: %s. Retrying every %g s; no report is discarded",
                message,
                self._unauthorized_retry,
            )
        self._unauthorized = True
        self._unauthorized_until = time.monotonic() + self._unauthorized_retry
        self.last_error, self._error_passes = message, True

    async def _transient(self, item: QueueItem, exc: ServerUnavailableError) -> None:
        message = str(exc)
        self.last_error, self._error_passes = message, True
        conn = self._connection
        if conn is not None:
            conn.report_failure()
            if exc.status_code is None and not await self._still_connected(conn):
                # the server is away: wait for it instead of counting an attempt
                await asyncio.to_thread(self._store.release, item)
                return
        if exc.status_code == 429:
            hold = (
                exc.retry_after if exc.retry_after is not None else self.config.retry.initial_delay
            )
            hold = min(hold, self._store.max_delay)  # a runaway Retry-After must not stall us
            self._hold_until = max(self._hold_until, time.monotonic() + hold)
        policy = self.config.retry
        attempts = item.envelope.attempts + 1
        if not self.config.retry_failed:
            await self._park(
                item, f"upload failed (retry_failed is false): {message}", exc.status_code
            )
            return
        if policy.max_attempts is not None and attempts >= policy.max_attempts:
            await self._park(
                item, f"gave up after {attempts} attempts; last error: {message}", exc.status_code
            )
            return
        delay = backoff_delay(
            attempts,
            initial=policy.initial_delay,
            maximum=policy.max_delay,
            retry_after=exc.retry_after,
            rng=self._rng,
        )
        await asyncio.to_thread(
            self._store.retry_later, item, delay=delay, error=message, status=exc.status_code
        )
        self.retried += 1
        log.info(
            "report %s: attempt %d failed (%s); next in %.1f s", item.id, attempts, message, delay
        )

    async def _still_connected(self, conn: ConnectionService) -> bool:
        """Check the connection now; no new upload starts until the answer is in."""
        self._checking += 1
        try:
            return await conn.check() == "connected"
        finally:
            self._checking -= 1
            self._kick.set()

    async def _park(
        self, item: QueueItem, reason: str, status: int | None, *, rejected: bool = False
    ) -> None:
        await asyncio.to_thread(self._store.dead_letter, item, reason=reason, status=status)
        self.dead_lettered += 1
        if rejected:
            self.rejected += 1
        self.last_error, self._error_passes = reason, False
        log.warning(
            "report %s (from %s) moved to failed/: %s. Fix the cause, then run "
            "'pywats-client queue requeue'",
            item.id,
            item.envelope.source_name,
            reason,
        )

    def _storage_trouble(self, exc: OSError | DiskFullError) -> None:
        self.last_error, self._error_passes = f"queue folder {self._store.path}: {exc}", True
        self._hold_until = max(self._hold_until, time.monotonic() + STORAGE_HOLD)
        log.error("uploads held %g s: cannot update the queue folder: %s", STORAGE_HOLD, exc)
