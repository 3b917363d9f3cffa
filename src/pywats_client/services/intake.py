"""IntakePipeline: ready source file -> report(s) durably queued -> post action on the source.

The order is the guarantee: a batch of ready files is first recorded in the
crash journal (one fsync), then converted (each in a thread, with
``converter_timeout``), then its reports are enqueued durably, and only then is
each source moved, deleted, kept or zipped. A crash anywhere leaves the source
in the watch folder; converting it again gives the same report ids, and on
recovery ids the queue already holds are not enqueued twice.

Files that were inside a converter when the worker died get a crash count
(each conversion is marked in the journal as it starts and ends, so files of
the batch that were waiting or already done are not blamed); on the next start
they are converted one at a time, so a file that kills the worker is
identified, and after a second crash it is quarantined to the error folder
instead of crash-looping the station.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from pywats_client._fsutil import fsync_dirs
from pywats_client.core.config import ClientConfig
from pywats_client.errors import ConversionError, RetryableError
from pywats_client.services._convert_runner import ConvertOutcome, ConvertRunner
from pywats_client.services._journal import (
    BatchJournal,
    CrashCounts,
    ProcessedEntry,
    ProcessedJournal,
)
from pywats_client.services._post_actions import (
    DEFAULT_ZIP_LIMIT,
    ErrorReport,
    delete_source,
    move_to_done,
    move_to_error,
    relative_folder,
    sweep_temps,
    zip_sources,
)
from pywats_client.services._readiness import SourceFile
from pywats_client.services.file_watcher import FileWatcher

__all__ = ["ConversionLike", "ConverterLike", "IntakePipeline", "IntakeStats", "StoreLike"]

log = logging.getLogger(__name__)

#: A file that was being converted in this many worker crashes is quarantined.
QUARANTINE_AFTER_CRASHES = 2
#: A file that fails while being written is left in place this many times at most
#: (a tester pausing several times), then parked in Error like any bad file.
_LEFT_IN_PLACE_MAX = 3
#: Sources remembered as left in place; beyond that the memory starts over.
_LEFT_IN_PLACE_REMEMBERED = 10_000


class ConversionLike(Protocol):
    """What intake needs from ``pywats_client.converters.Conversion``."""

    @property
    def converter(self) -> str: ...
    @property
    def source_sha256(self) -> str: ...
    @property
    def source_size(self) -> int | None: ...
    @property
    def reports(self) -> list[dict[str, Any]]: ...


class ConverterLike(Protocol):
    """What intake needs from ``ConverterManager``: blocking, raises ConversionError only."""

    def convert(self, path: Path) -> ConversionLike: ...


class _Counts(Protocol):
    @property
    def pending(self) -> int: ...


class _Item(Protocol):
    @property
    def id(self) -> str: ...


class StoreLike(Protocol):
    """What intake needs from ``pywats_client.queue.QueueStore``."""

    def enqueue(self, items: Sequence[Any]) -> Any: ...
    def contains(self, report_id: str) -> bool: ...
    def counts(self) -> _Counts: ...
    def iter_items(self, state: Literal["pending", "failed"]) -> Iterable[_Item]: ...


#: Builds one queue item: (report, source_name, source_sha256, converter) -> NewReport.
ItemFactory = Callable[[dict[str, Any], str, str, str], Any]


@dataclass
class IntakeStats:
    """Counters since start, for the snapshot."""

    taken: int = 0
    converted: int = 0
    reports_queued: int = 0
    errored: int = 0
    quarantined: int = 0
    abandoned: int = 0
    post_action_failures: int = 0
    duplicates_skipped: int = 0
    backpressure: bool = False
    last_error: str | None = None
    warnings: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Finished:
    #: Sources that could not be moved to the error folder: not taken again in this run.
    unreleased: set[Path]
    #: Sources rewritten (or gone) while converted: left alone, looked at again.
    changed: set[Path]


class _EnqueueFailed(Exception):
    """The queue refused a batch (disk full, I/O error): nothing of it was queued."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass
class _Staged:
    """A converted batch waiting to be committed (enqueued, then post actions)."""

    batch: list[SourceFile]
    results: list[_Done]
    journal: Path | None
    recovering: bool


@dataclass
class _Done:
    """One source's conversion result within a batch."""

    src: SourceFile
    conversion: ConversionLike | None = None
    error: ErrorReport | None = None
    #: The error may come from reading the file half-written: try it again once it
    #: has settled instead of parking it (see :meth:`IntakePipeline._finish`).
    retry_when_settled: bool = False


class IntakePipeline:
    """Takes ready files from a :class:`FileWatcher` and carries each through its lifecycle."""

    def __init__(
        self,
        config: ClientConfig,
        watcher: FileWatcher,
        converter: ConverterLike,
        store: StoreLike,
        make_item: ItemFactory,
        *,
        on_queued: Callable[[], None] | None = None,
        batch_size: int = 64,
        workers: int = 2,
        stuck_limit: int = 3,
        zip_limit: int = DEFAULT_ZIP_LIMIT,
        enqueue_retry_delay: float = 5.0,
    ) -> None:
        self.config = config
        self.watcher = watcher
        self.store = store
        self._make_item = make_item
        self._on_queued = on_queued
        self._batch_size = batch_size
        #: Halved after each batch that could not be queued (a nearly full disk
        #: takes a few reports where it refuses many), doubled back after a success.
        self._batch_limit = batch_size
        self._stuck_limit = stuck_limit
        self._zip_limit = zip_limit
        self._retry_delay = enqueue_retry_delay
        self._converter = converter
        self._runner: ConvertRunner[ConversionLike] = ConvertRunner(
            self._convert_marked, workers=workers, timeout=config.converter_timeout
        )
        folder = config.queue_dir / "intake"
        self._journal = BatchJournal(folder)
        #: Batch journal of each source being converted (read by converter threads).
        self._journal_of: dict[Path, Path] = {}
        #: How often each source that failed while being written was left in place.
        self._left_in_place: dict[Path, int] = {}
        self._crashes: CrashCounts | None = None
        self._processed: ProcessedJournal | None = None
        self._folder = folder
        self._task: asyncio.Task[None] | None = None
        self._stop_taking = asyncio.Event()
        self._abort = asyncio.Event()
        self._suspects: list[SourceFile] = []
        #: Converted before the crash but maybe not (fully) queued: redone, not blamed.
        self._rerun: list[SourceFile] = []
        self._queued_before: set[str] = set()
        self._next_pending_retry = 0.0
        self._commit: asyncio.Task[None] | None = None
        self._uncommitted = 0
        self._processed_lock = threading.Lock()
        self.stats = IntakeStats()
        #: Set when the process should be restarted (stuck converter threads).
        self.restart_required: str | None = None

    # --- lifecycle -------------------------------------------------------------

    def load_journals(self) -> None:
        """Open the journals (blocking); call before the watcher starts so skips apply."""
        self._crashes = CrashCounts(self._folder)
        self._processed = ProcessedJournal(self._folder)

    def is_processed(self, path: Path, size: int, mtime_ns: int) -> bool:
        """Skip filter for the watcher: kept (or awaiting post action) and unchanged."""
        return self._processed is not None and self._processed.matches(path, size, mtime_ns)

    async def recover(self) -> None:
        """Deal with what a previous run left (journals, crash suspects) before intake starts."""
        if self._crashes is None:
            await asyncio.to_thread(self.load_journals)
        self._suspects, self._rerun = await asyncio.to_thread(self._recover_blocking)
        for src in self._suspects + self._rerun:
            self.watcher.claim(src.path)
        if self._suspects or self._rerun:
            # Ids queued by the run that crashed, taken before the uploader starts: a
            # report uploaded (and so gone from the queue) since is still not re-queued.
            self._queued_before = await asyncio.to_thread(self._queued_ids)

    def _queued_ids(self) -> set[str]:
        states: tuple[Literal["pending", "failed"], ...] = ("pending", "failed")
        return {item.id for state in states for item in self.store.iter_items(state)}

    async def start(self) -> None:
        if self._task is None:
            if self._crashes is None:
                await self.recover()
            self._task = asyncio.create_task(self._run(), name="intake")

    def stop_taking(self) -> None:
        """Take no new files; the batch in progress finishes."""
        self._stop_taking.set()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking files; give the current batch ``timeout`` s, then abandon it safely."""
        self.stop_taking()
        task = self._task
        if task is None:
            return
        try:
            await self._wind_down(task, timeout)
        finally:
            self._runner.close()
            self._task = None

    async def _wind_down(self, task: asyncio.Task[None], timeout: float) -> None:
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            self._abort.set()  # conversions still running: leave the sources for next time
            done, _ = await asyncio.wait({task}, timeout=max(timeout, 5.0))
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif task.exception() is not None:
            log.error("intake stopped with an error", exc_info=task.exception())

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def abandoned(self) -> int:
        return self._runner.abandoned

    # --- main loop ------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while self._rerun and not self._stop_taking.is_set():
                batch, self._rerun = (
                    self._rerun[: self._batch_limit],
                    self._rerun[self._batch_limit :],
                )
                staged = await self._convert_stage(batch, recovering=True)
                if staged is not None:
                    await self._commit_stage(staged)
            while self._suspects and not self._stop_taking.is_set():
                staged = await self._convert_stage([self._suspects.pop(0)], recovering=True)
                if staged is not None:
                    await self._commit_stage(staged)
            while not self._stop_taking.is_set():
                room = await self._room_in_queue()
                if room == 0:
                    continue
                batch = await self._next_batch(min(room, self._batch_limit))
                if batch:
                    # Convert this batch while the previous one is being committed.
                    staged = await self._convert_stage(batch)
                    await self._await_commit()
                    if staged is not None:
                        self._uncommitted = len(staged.batch)
                        self._commit = asyncio.create_task(self._commit_then_count(staged))
                await self._maybe_retry_pending_actions()
        except Exception as exc:
            self.stats.last_error = f"intake stopped: {type(exc).__name__}: {exc}"
            log.exception("intake loop failed")
            raise
        finally:
            await asyncio.shield(self._await_commit())

    async def _await_commit(self) -> None:
        commit, self._commit = self._commit, None
        if commit is not None:
            await commit

    async def _next_batch(self, limit: int) -> list[SourceFile]:
        get = asyncio.ensure_future(self.watcher.get_ready(limit, timeout=self._pending_wait()))
        stop = asyncio.ensure_future(self._stop_taking.wait())
        try:
            await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not get.done():
            get.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await get
            return []
        return get.result()

    def _pending_wait(self) -> float:
        """How long to wait for files before looking at failed post actions again."""
        if self._processed is None or not self._processed.has_pending_actions():
            return self.config.rescan_interval
        return max(
            0.1, min(self.config.rescan_interval, self._next_pending_retry - time.monotonic())
        )

    async def _room_in_queue(self) -> int:
        """How many files may be taken now; waits (backpressure) while the queue is full."""
        limit = self.config.max_queue_size
        if limit is None:
            return self._batch_size
        pending = self.store.counts().pending + self._uncommitted
        if pending < limit:
            if self.stats.backpressure:
                log.info("queue below max_queue_size (%d pending): taking files again", pending)
                self.stats.backpressure = False
                self.stats.warnings.pop("backpressure", None)
                self.watcher.resume()
            return limit - pending
        if not self.stats.backpressure:
            log.warning(
                "queue holds %d reports (max_queue_size %d): files stay in the watch folder "
                "until uploads catch up",
                pending,
                limit,
            )
            self.stats.backpressure = True
            self.stats.warnings["backpressure"] = (
                f"queue full ({pending} >= max_queue_size {limit}): not taking new files"
            )
            self.watcher.pause()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop_taking.wait(), 0.5)
        return 0

    # --- one batch -------------------------------------------------------------------

    async def _convert_stage(
        self, batch: list[SourceFile], *, recovering: bool = False
    ) -> _Staged | None:
        """Journal the batch (one fsync), then convert it; None if a stop interrupted it."""
        self.stats.taken += len(batch)
        try:
            todo, results, journal = await asyncio.to_thread(self._begin_batch, batch, recovering)
        except OSError as exc:  # the journal cannot be written (disk full): hold, retry
            await self._enqueue_failed(batch, None, exc)
            return None
        try:
            converted = await self._convert_all(todo)
        finally:
            for src in todo:
                self._journal_of.pop(src.path, None)
        if converted is None:  # graceful stop while converting: sources stay for next time
            if journal is not None:
                await asyncio.to_thread(self._journal.abort, journal)
            for src in batch:
                self.watcher.release(src.path)
            return None
        return _Staged(batch, results + converted, journal, recovering)

    async def _commit_then_count(self, staged: _Staged) -> None:
        try:
            await self._commit_stage(staged)
        finally:
            self._uncommitted = 0

    async def _commit_stage(self, staged: _Staged) -> None:
        """Enqueue durably, record that in the journal, then the post actions."""
        batch, journal = staged.batch, staged.journal
        try:
            finished = await asyncio.to_thread(self._commit_blocking, staged)
        except _EnqueueFailed as failed:
            await self._enqueue_failed(batch, journal, failed.cause)
            return
        self._batch_limit = min(self._batch_size, self._batch_limit * 2)
        if self._on_queued is not None and any(d.conversion for d in staged.results):
            self._on_queued()
        for src in batch:
            if src.path not in finished.unreleased:
                self.watcher.release(src.path)
        for path in finished.changed:
            self.watcher.notice(path)  # its events came while it was claimed
        if staged.recovering and self._crashes is not None:
            await asyncio.to_thread(self._crashes.forget, [s.path for s in batch])
        self._check_stuck()

    def _begin_batch(
        self, batch: list[SourceFile], recovering: bool = False
    ) -> tuple[list[SourceFile], list[_Done], Path | None]:
        """Blocking first step: refusals and unchanged kept files out, the rest journaled."""
        todo, results = self._prefilter(batch)
        journal = self._journal.begin(todo, recovering=recovering) if todo else None
        if journal is not None:
            for src in todo:
                self._journal_of[src.path] = journal
        return todo, results, journal

    def _convert_marked(self, path: Path) -> ConversionLike:
        """Convert in a converter thread, marking start and end in the batch journal."""
        journal = self._journal_of.get(path)
        if journal is not None:
            self._journal.mark(journal, path, "start")
        try:
            return self._converter.convert(path)
        finally:
            if journal is not None:
                self._journal.mark(journal, path, "end")

    def _commit_blocking(self, staged: _Staged) -> _Finished:
        """Blocking second step: enqueue (durable), journal it, post actions."""
        results, journal = staged.results, staged.journal
        # A file written on while it was converted (a tester pausing longer than
        # ready_after) gave a report of part of its result: not queued; the file is
        # taken again once complete. A file replaced by other content (the next result
        # under the same name) or gone keeps its report: that content was a whole result.
        partial = {
            d.src.path
            for d in results
            if d.conversion is not None and _appended_to(d.src, d.conversion)
        }
        try:
            self._enqueue([d for d in results if d.src.path not in partial], staged.recovering)
        except (OSError, RetryableError) as exc:
            raise _EnqueueFailed(exc) from exc
        for path in partial:
            log.warning("%s grew while being converted; its report is not queued", path)
        if journal is not None:
            outcomes = {
                d.src.path: ("queued" if d.error is None and d.src.path not in partial else "error")
                for d in results
            }
            try:
                self._journal.converted(journal, outcomes)
            except OSError as exc:
                # Safe to go on: after a crash, recovery converts the sources again and
                # skips the ids the queue already holds.
                log.warning("cannot record the queued batch in %s: %s", journal, exc)
        return self._finish(results, journal)

    def _prefilter(self, batch: list[SourceFile]) -> tuple[list[SourceFile], list[_Done]]:
        """Split off files refused by the watcher and kept files whose content is unchanged."""
        todo: list[SourceFile] = []
        done: list[_Done] = []
        for src in batch:
            if src.reject_reason:
                done.append(_Done(src, error=ErrorReport(src.reject_reason)))
            elif self._unchanged_kept(src):
                continue
            else:
                todo.append(src)
        return todo, done

    def _unchanged_kept(self, src: SourceFile) -> bool:
        """A kept file touched but not changed (same sha256): record it, do not resend."""
        if self._processed is None or self.config.post_action != "keep":
            return False
        entry = self._processed.get(src.path)
        if entry is None:
            return False
        try:
            sha = _sha256(src.path)
        except OSError:
            return False
        if sha != entry.sha256:
            return False
        self._record_processed([ProcessedEntry(str(src.path), src.size, src.mtime_ns, sha)])
        return True

    async def _convert_all(self, todo: list[SourceFile]) -> list[_Done] | None:
        if not todo:
            return []
        tasks = [asyncio.ensure_future(self._runner.run(src.path)) for src in todo]
        abort = asyncio.ensure_future(self._abort.wait())
        try:
            pending: set[asyncio.Future[Any]] = {*tasks, abort}
            while any(not t.done() for t in tasks):
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if abort.done():
                    return None
        finally:  # aborted, or this task cancelled: withdraw what has not finished
            abort.cancel()
            for task in tasks:
                task.cancel()
        return [self._judge(src, task.result()) for src, task in zip(todo, tasks, strict=True)]

    def _judge(self, src: SourceFile, outcome: ConvertOutcome[ConversionLike]) -> _Done:
        if outcome.timed_out:
            detail = f"where the converter was stuck:\n{outcome.stack}" if outcome.stack else None
            return _Done(
                src,
                error=ErrorReport(
                    f"the converter did not finish within converter_timeout "
                    f"({self.config.converter_timeout:g} s) and was abandoned; raise "
                    "converter_timeout if such files are legitimately slow",
                    converter=outcome.converter,
                    detail=detail,
                ),
            )
        # A file seen being written (without a marker to say it is complete) may have
        # been read half-written; a timeout is not that, and is not risked twice. A
        # tester rewriting a bad file again and again gets it parked after a few tries.
        half_read = (
            src.seen_changing
            and src.marker is None
            and self._left_in_place.get(src.path, 0) < _LEFT_IN_PLACE_MAX
        )
        if outcome.error is not None:
            exc = outcome.error
            reason = str(exc) if isinstance(exc, ConversionError) else "the converter crashed"
            # ErrorReport names the converter a ConversionError carries
            return _Done(
                src, error=ErrorReport(reason, exception=exc), retry_when_settled=half_read
            )
        conversion = outcome.value
        assert conversion is not None
        if not conversion.reports:
            return _Done(
                src,
                error=ErrorReport(
                    "the converter produced no report", converter=conversion.converter
                ),
                retry_when_settled=half_read,
            )
        return _Done(src, conversion=conversion)

    def _enqueue(self, results: list[_Done], recovering: bool) -> None:
        items = []
        skipped = 0
        for done in results:
            if done.conversion is None:
                continue
            conv = done.conversion
            for report in conv.reports:
                report_id = str(report.get("id"))
                if recovering and (
                    report_id in self._queued_before or self.store.contains(report_id)
                ):
                    skipped += 1
                    continue
                items.append(
                    self._make_item(report, done.src.path.name, conv.source_sha256, conv.converter)
                )
        if items:
            self.store.enqueue(items)
        self.stats.reports_queued += len(items)
        self.stats.duplicates_skipped += skipped
        if skipped:
            log.info("%d report(s) were already queued before the crash; not queued again", skipped)

    async def _enqueue_failed(
        self, batch: list[SourceFile], journal: Path | None, exc: BaseException
    ) -> None:
        message = f"cannot queue reports ({type(exc).__name__}: {exc}); sources stay in place"
        if isinstance(exc, PermissionError):
            message += (
                f"; give the account the station runs as write access to {self.config.queue_dir}"
            )
        self._batch_limit = max(1, len(batch) // 2)
        log.error("%s; retrying in %g s", message, self._retry_delay)
        self.stats.last_error = message
        self.stats.warnings["enqueue"] = message
        if journal is not None:
            await asyncio.to_thread(self._journal.abort, journal)
            await asyncio.to_thread(self._journal.end, journal)
        for src in batch:
            self.watcher.release(src.path)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop_taking.wait(), self._retry_delay)
        self.watcher.request_rescan()

    # --- after the reports are safe ---------------------------------------------------

    def _finish(self, results: list[_Done], journal: Path | None) -> _Finished:
        """Post actions and error moves for one batch (blocking)."""
        dirs: list[Path] = []
        unreleased: set[Path] = set()
        # A file rewritten since it was taken is new content: leave it to be taken again
        # (never delete, archive or park what was not converted).
        changed = {d.src.path for d in results if not _unchanged(d.src)}
        for path in changed:
            log.warning("%s changed or vanished while being converted; not touched", path)
        ok = [d.src for d in results if d.conversion is not None and d.src.path not in changed]
        for src in ok:
            self._left_in_place.pop(src.path, None)
        shas = {d.src.path: d.conversion.source_sha256 for d in results if d.conversion}
        for path in self._post_action(ok, shas, dirs):
            log.warning("%s changed just before its post action; not touched", path)
            changed.add(path)
        for done in results:
            if done.error is None or done.src.path in changed:
                continue
            if done.retry_when_settled:
                # Parked in Error, a file read half-written (a tester pausing longer than
                # ready_after) would get the rest of its result there. It stays, to be
                # taken again at the next rescan or change; unchanged by then, it is parked.
                if len(self._left_in_place) >= _LEFT_IN_PLACE_REMEMBERED:
                    self._left_in_place.clear()  # files deleted by hand are never cleared
                tries = self._left_in_place.get(done.src.path, 0) + 1
                self._left_in_place[done.src.path] = tries
                log.info(
                    "%s could not be converted (%s); it was still being written when taken, "
                    "so it stays and is tried again once it has settled (%d of %d)",
                    done.src.path,
                    done.error.reason,
                    tries,
                    _LEFT_IN_PLACE_MAX,
                )
                continue
            error = done.error
            tries = self._left_in_place.pop(done.src.path, 0)
            if tries:
                error = replace(
                    error,
                    reason=f"{error.reason} (it had failed {tries} time(s) before, while "
                    "still being written)",
                )
            try:
                target = move_to_error(done.src, error)
            except OSError as exc:
                self._note(f"cannot move {done.src.path} to {done.src.error_dir}: {exc}")
                unreleased.add(done.src.path)  # never retake it in this run
                continue
            dirs += [target.parent, done.src.path.parent]
            self.stats.errored += 1
            reason = error.reason
            name = done.src.path.name
            self.stats.last_error = reason if reason.startswith(name) else f"{name}: {reason}"
            log.warning("%s -> %s: %s", done.src.path, target, reason)
        self.stats.converted += sum(1 for d in results if d.conversion is not None)
        self._sync_dirs(dirs)
        if journal is not None:
            self._journal.end(journal)
        return _Finished(unreleased, changed)

    def _post_action(
        self, ok: list[SourceFile], shas: dict[Path, str], dirs: list[Path]
    ) -> set[Path]:
        """Move, delete, archive or keep converted sources; returns those found rewritten.

        Each source is looked at again right before it is moved or deleted: a tester
        writing its next result under the same name must not lose it to this one's
        post action.
        """
        action = self.config.post_action
        failed: list[ProcessedEntry] = []
        kept: list[ProcessedEntry] = []
        rewritten: set[Path] = set()
        if action == "zip":
            by_done: dict[Path, list[SourceFile]] = defaultdict(list)
            for src in ok:
                by_done[src.done_dir].append(src)
            for done_dir, group in by_done.items():
                try:
                    zip_sources(done_dir, group, limit=self._zip_limit)
                except OSError as exc:
                    self._note(f"cannot add to the archive in {done_dir}: {exc}")
                    failed += [self._entry(s, shas, action) for s in group]
                    continue
                # The archive's rename must be durable before any source is deleted.
                self._sync_dirs([done_dir])
                for src in group:
                    if not _unchanged(src):
                        rewritten.add(src.path)
                        continue
                    try:
                        delete_source(src)
                    except OSError as exc:  # archived; redoing the zip will not add it twice
                        self._note(f"cannot delete {src.path} after archiving it: {exc}")
                        failed.append(self._entry(src, shas, action))
                        continue
                    dirs.append(src.path.parent)
        else:
            for src in ok:
                if action in ("move", "delete") and not _unchanged(src):
                    rewritten.add(src.path)
                    continue
                try:
                    if action == "move":
                        dirs.append(move_to_done(src).parent)
                    elif action == "delete":
                        delete_source(src)
                    else:
                        kept.append(self._entry(src, shas, None))
                        continue
                    dirs.append(src.path.parent)
                except OSError as exc:
                    self._note(f"cannot {action} {src.path}: {exc}; retrying later")
                    failed.append(self._entry(src, shas, action))
        self._record_processed(kept + failed)
        self.stats.post_action_failures += len(failed)
        return rewritten

    def _record_processed(self, entries: list[ProcessedEntry]) -> None:
        """Note kept files and post actions to redo; a failure (disk full) is reported only.

        The reports are already queued: without the note a kept file is at worst
        converted again later under the same report ids, which is better than
        stopping the station.
        """
        if self._processed is None or not entries:
            return
        try:
            with self._processed_lock:
                self._processed.add(entries)
        except OSError as exc:
            self._note(f"cannot record {len(entries)} processed file(s): {exc}")

    @staticmethod
    def _entry(src: SourceFile, shas: dict[Path, str], pending: str | None) -> ProcessedEntry:
        return ProcessedEntry(
            str(src.path), src.size, src.mtime_ns, shas.get(src.path, ""), pending
        )

    def _note(self, message: str) -> None:
        log.warning("%s", message)
        self.stats.last_error = message

    def _sync_dirs(self, dirs: list[Path]) -> None:
        """fsync the watch-side folders touched by post actions (blocking).

        The reports are already durable in the queue, so a folder that cannot be
        fsync'd (some network and FUSE file systems answer EINVAL) is reported
        once and otherwise ignored rather than stopping the station.
        """
        try:
            fsync_dirs(dirs)
        except OSError as exc:
            if "fsync" not in self.stats.warnings:
                log.warning("cannot fsync folders of the watch side (%s); going on", exc)
            self.stats.warnings["fsync"] = (
                f"folder fsync not supported here ({exc.strerror or exc}): moves into "
                "Done/Error may not survive a power cut; reports are safe in the queue"
            )

    def _check_stuck(self) -> None:
        stuck = self._runner.stuck
        self.stats.abandoned = self._runner.abandoned
        if stuck >= self._stuck_limit and self.restart_required is None:
            self.restart_required = (
                f"{stuck} converter threads are stuck past converter_timeout; "
                "restarting the worker frees them"
            )
            log.error("%s", self.restart_required)

    async def _maybe_retry_pending_actions(self) -> None:
        if self._processed is None or time.monotonic() < self._next_pending_retry:
            return
        if self._processed.has_pending_actions():
            self._next_pending_retry = time.monotonic() + self.config.rescan_interval
            await self._await_commit()
            await asyncio.to_thread(self._retry_pending_actions)

    def _retry_pending_actions(self) -> None:
        """Redo post actions that failed earlier (file locked, share away)."""
        assert self._processed is not None
        done: list[Path] = []
        for entry in self._processed.pending_actions():
            path = Path(entry.path)
            src = self._source_for(path, entry.size, entry.mtime_ns)
            if src is None:
                done.append(path)  # gone or changed: nothing left to do for that report
                continue
            dirs: list[Path] = []
            before = self.stats.post_action_failures
            self._post_action([src], {path: entry.sha256}, dirs)
            if self.stats.post_action_failures == before:
                done.append(path)
                self._sync_dirs(dirs)
            else:
                self.stats.post_action_failures = before  # still failing: counted once
        try:
            with self._processed_lock:
                self._processed.remove(done)
        except OSError as exc:  # they stay pending; redoing them is harmless
            self._note(f"cannot update {self._processed.path}: {exc}")

    def _source_for(self, path: Path, size: int, mtime_ns: int) -> SourceFile | None:
        """A SourceFile for ``path`` if it still exists unchanged and belongs to a watch root."""
        from pywats_client.services._scan import root_for

        try:
            st = path.stat()
        except OSError:
            return None
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            return None
        root = root_for(self.watcher.roots, path)
        if root is None:
            return None
        marker = Path(f"{path}{self.config.ready_marker}") if self.config.ready_marker else None
        return SourceFile(path, root.path, root.done_dir, root.error_dir, size, mtime_ns, marker)

    # --- recovery ----------------------------------------------------------------------

    def _recover_blocking(self) -> tuple[list[SourceFile], list[SourceFile]]:
        """Handle journals of a previous run.

        Returns the crash suspects (converted one by one) and the files converted
        before the crash whose reports may be queued already (converted again,
        duplicates skipped, not blamed).
        """
        assert self._crashes is not None and self._processed is not None
        batches = self._journal.pending()
        # Where a kill can have left a temp file (an archive, a reason, a copy to
        # another volume): the Done and Error folder of each watch folder (files
        # refused before converting are in no batch), and their sub-folders for
        # the files of an unfinished batch or a crash suspect.
        unfinished = [s for batch in batches for s in batch.files]
        unfinished += [src for src, _ in self._crashes.suspects()]
        roots = self.watcher.roots
        sweep_temps(
            [folder for root in roots for folder in (root.done_dir, root.error_dir)]
            + [relative_folder(s, s.done_dir) for s in unfinished]
            + [relative_folder(s, s.error_dir) for s in unfinished]
        )
        redo: list[SourceFile] = []
        rerun: list[SourceFile] = []
        for batch in batches:
            if batch.outcomes is None and not batch.aborted:
                alive = [s for s in batch.files if _unchanged(s)]
                # In a redo after a crash, a file that left its converter is to blame
                # too: its reports may be what kills the worker while being queued.
                guilty = batch.started if batch.recovering else batch.started - batch.ended
                blamed = [s for s in alive if str(s.path) in guilty]
                rerun += [s for s in alive if str(s.path) in batch.ended - guilty]
                if blamed:
                    log.warning(
                        "the previous run died while converting %s; converting %s one at a time",
                        ", ".join(s.path.name for s in blamed),
                        "it" if len(blamed) == 1 else "them",
                    )
                self._crashes.bump(blamed, batch.journal.name)
            elif batch.outcomes is not None:
                redo += [
                    s
                    for s in batch.files
                    if batch.outcomes.get(str(s.path)) == "queued" and _unchanged(s)
                ]
            self._journal.end(batch.journal)
        if redo:
            # Reports are already queued: only the post action is left to do.
            dirs: list[Path] = []
            shas = {}
            for src in redo:
                with contextlib.suppress(OSError):
                    shas[src.path] = _sha256(src.path)
            self._post_action(redo, shas, dirs)
            self._sync_dirs(dirs)
        suspects = []
        quarantined = []
        for src, count in self._crashes.suspects():
            if not _unchanged(src):
                quarantined.append(src.path)  # gone or changed: forget it
                continue
            if count >= QUARANTINE_AFTER_CRASHES:
                reason = (
                    f"the worker died {count} times while converting this file; it is "
                    "quarantined so the station keeps running. Check the converter with "
                    "'pywats-client convert FILE'"
                )
                try:
                    target = move_to_error(src, ErrorReport(reason))
                except OSError as exc:
                    self._note(f"cannot quarantine {src.path}: {exc}")
                    continue
                self._sync_dirs([target.parent, src.path.parent])
                log.error("%s quarantined to %s: %s", src.path, target, reason)
                self.stats.quarantined += 1
                self.stats.errored += 1
                self.stats.last_error = f"{src.path.name}: quarantined after {count} crashes"
                quarantined.append(src.path)
            else:
                suspects.append(src)
        self._crashes.forget(quarantined)
        if self._processed is not None and len(self._processed):
            try:
                self._processed.compact(drop_missing=True)
            except OSError as exc:  # e.g. disk full: only a tidy-up, start anyway
                log.warning("cannot compact %s: %s", self._processed.path, exc)
        blamed_paths = {s.path for s in suspects} | set(quarantined)
        rerun = list({s.path: s for s in rerun if s.path not in blamed_paths}.values())
        return suspects, rerun


def _unchanged(src: SourceFile) -> bool:
    try:
        st = src.path.stat()
    except OSError:
        return False
    return st.st_size == src.size and st.st_mtime_ns == src.mtime_ns


def _appended_to(src: SourceFile, conversion: ConversionLike) -> bool:
    """The file has grown since it was read, and begins with the bytes converted."""
    read = conversion.source_size if conversion.source_size is not None else src.size
    try:
        if src.path.stat().st_size <= read:
            return False
        with open(src.path, "rb") as handle:
            head = handle.read(read)
    except OSError:
        return False
    return len(head) == read and hashlib.sha256(head).hexdigest() == conversion.source_sha256


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
