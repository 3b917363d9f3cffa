"""``QueueStore``: the durable on-disk report queue of one instance.

Every report is one file in a state folder (``pending/``, ``failed/``,
``sent/``). A file becomes visible only by an atomic rename of a fsync'd temp
file, followed by a fsync of the folder, so a crash at any instant leaves
each report either fully queued or not queued at all - never half. Names sort
by due time (see ``_names``), so the store keeps only a bounded window of the
next names in memory and its cost per report does not grow with the backlog.

The store is blocking and thread-safe: asyncio callers run in threads what
waits on the disk (fsync, listing ``pending/``); a claim without a scan and a
complete are a small read or a rename, quicker than the hop to a thread.
Only the instance's worker changes ``pending/`` except for ``requeue`` (the
CLI), which only adds files by atomic rename, so it is safe while the worker
runs; the worker notices them at its next scan.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pywats_client._fsutil import (
    TEMP_SUFFIX,
    atomic_write_text,
    ensure_private_dir,
    fsync_dir,
    is_disk_full,
    move_no_overwrite,
    remove_file,
    replace_file,
)
from pywats_client.errors import DiskFullError
from pywats_client.queue._envelope import (
    CorruptQueueFile,
    Envelope,
    NewReport,
    QueueItem,
    QueueState,
    decode_item,
    encode_item,
    epoch_to_iso,
)
from pywats_client.queue._files import remove_quietly, sweep_temp_files, write_temp
from pywats_client.queue._names import due_ns_of, key_for_id, key_of, make_name, next_due_ns
from pywats_client.queue._window import Window

__all__ = ["QueueCounts", "QueueStore", "RequeueResult"]

log = logging.getLogger("pywats_client.queue")

#: Window size bounds: a tenth of the backlog, within these limits.
MIN_WINDOW = 1024
MAX_WINDOW = 10_000
#: Unrecognised files quarantined per scan (the rest wait for the next scan).
_MAX_JUNK_PER_SCAN = 100
_REASON_SUFFIX = ".reason.txt"
#: Seconds beyond ``max_delay`` before a far-future due time counts as clock skew.
_CLOCK_SLACK = 60.0
#: Accepted reports renamed aside before complete() deletes them itself.
_MAX_TRASH = 1000
#: Files of sent reports kept to be overwritten by new ones (see write_temp).
_MAX_SPARES = 256
#: A queued file that cannot be read is skipped for this long, doubling per failure.
_UNREADABLE_FIRST_HOLD = 5.0
_UNREADABLE_MAX_HOLD = 300.0
#: Unreadable files one claim skips before it reports the folder itself as failing.
_MAX_UNREADABLE_PER_CLAIM = 10


@dataclass(frozen=True)
class QueueCounts:
    """Sizes of the queue; cheap to get (maintained, re-counted at scans)."""

    pending: int
    failed: int
    in_flight: int
    in_backoff: int
    quarantined: int


@dataclass(frozen=True)
class RequeueResult:
    requeued: list[str] = field(default_factory=list)
    #: Ids asked for that are not in ``failed/``.
    missing: list[str] = field(default_factory=list)
    #: ``(file name, problem)`` of failed files that could not be read.
    unreadable: list[tuple[str, str]] = field(default_factory=list)


class QueueStore:
    """The queue folder of one instance (layout in docs/internals.md).

    ``maintenance=False`` is for tools that open the queue of a running worker
    (the CLI): it then removes no temp files, which may belong to the worker.
    """

    def __init__(
        self,
        queue_dir: Path,
        *,
        archive_sent: bool = False,
        window_size: int | None = None,
        rescan_interval: float = 30.0,
        maintenance: bool = True,
        max_delay: float = 300.0,
    ) -> None:
        self.path = Path(queue_dir)
        self.pending_dir = self.path / "pending"
        self.failed_dir = self.path / "failed"
        self.sent_dir = self.path / "sent"
        self.quarantine_dir = self.path / "quarantine"
        self.tmp_dir = self.path / "tmp"
        #: Touched by :meth:`requeue` so a running worker rescans at once.
        self.requeue_marker = self.path / "requeued.signal"
        self.archive_sent = archive_sent
        #: Longest retry wait (s); the uploader sets it from ``retry.max_delay``.
        self.max_delay = max_delay
        self._fixed_window = window_size
        self._rescan_interval = rescan_interval
        for folder in (
            self.path,
            self.pending_dir,
            self.failed_dir,
            self.quarantine_dir,
            self.tmp_dir,
        ):
            ensure_private_dir(folder)
        if archive_sent:
            ensure_private_dir(self.sent_dir)
        #: Names dead-lettered whose pending copy could not be removed yet (held open
        #: on Windows): never uploaded again, removed by :meth:`flush` once free.
        self._stranded: set[str] = set()
        #: Quarantine reasons a full disk refused, written by a later call.
        self._unwritten_reasons: dict[Path, str] = {}
        if maintenance:
            self._sweep()

        self._lock = threading.Lock()
        self._window = Window(window_size or MIN_WINDOW)
        #: Names in flight, each with the item its claim returned (None while the claim
        #: reads the file): a release by an older, already released item is ignored.
        self._claimed: dict[str, QueueItem | None] = {}
        #: Pending files whose read failed (not "missing"): name -> (retry at, the error),
        #: skipped until then so one bad file does not stop the others; and how often
        #: each failed in a row (the hold doubles), forgotten once it is read.
        self._unreadable: dict[str, tuple[float, str]] = {}
        self._read_failures: Counter[str] = Counter()
        self._scanned = False
        self._last_scan = -math.inf
        self._marker_seen = self._marker_mtime()
        self._pending = 0
        self._failed = 0
        self._quarantined = 0
        self._backoff: Counter[int] = Counter()  # due second -> reports waiting for it
        self._listeners: list[Callable[[], None]] = []
        # group commit of removals from pending/: one folder fsync covers many
        self._sync_lock = threading.Lock()
        self._changes = 0
        self._synced = 0
        self._trash: list[Path] = []  # accepted reports waiting for flush() to delete them
        self._spares: list[Path] = []  # flushed trash, durably out of pending/, to overwrite
        #: Set by the last flush at stop; a flush still running in another thread
        #: then deletes its files too. The next complete() opens it again.
        self._spares_closed = False

    # --- maintenance ------------------------------------------------------------

    def _sweep(self) -> None:
        removed = sweep_temp_files(self.tmp_dir)
        for folder in (self.pending_dir, self.failed_dir, self.quarantine_dir, self.sent_dir):
            removed += sweep_temp_files(folder)
        if removed:
            log.info("removed %d temp file(s) left by interrupted writes in %s", removed, self.path)
        self._finish_interrupted_dead_letters()
        self._restore_quarantine_reasons()

    def _restore_quarantine_reasons(self) -> None:
        """Write the reason of a file quarantined by a run that stopped before it could.

        A full disk defers the reason file, and the deferral lives in memory
        only: a kill meanwhile would leave the file in quarantine/ unexplained.
        The reason is found again by reading the file as the queue did.
        """
        try:
            names = {p.name for p in self.quarantine_dir.iterdir() if p.is_file()}
        except OSError:
            return
        for name in names:
            if not _is_quarantined_file(name) or name + _REASON_SUFFIX in names:
                continue
            path = self.quarantine_dir / name
            try:
                when = path.stat().st_mtime
                decode_item(path.read_bytes())
                reason = "it could not be used (the reason was lost when the station stopped)"
            except CorruptQueueFile as exc:
                reason = str(exc)
            except OSError:
                continue
            self._unwritten_reasons[self.quarantine_dir / (name + _REASON_SUFFIX)] = (
                _quarantine_note(name, reason, when)
            )
        self._write_reasons_locked()

    def _finish_interrupted_dead_letters(self) -> None:
        """Remove a pending report that also sits, under the same name, in ``failed/``.

        :meth:`dead_letter` writes the failed copy before removing the pending
        one; a crash in between (or, on Windows, a scanner holding the pending
        file) leaves both. Only a dead-letter keeps the name (requeue and
        retry give a new one), so the failed copy is the newer one - provided
        it reads back as the same report: a damaged one never costs the other.
        """
        finished = 0
        for name in _list_names(self.failed_dir):
            leftover = self.pending_dir / name
            if not os.path.lexists(leftover):
                continue
            if not self._same_report(self.failed_dir / name, leftover):
                log.warning(
                    "%s is also in failed/ but that copy is unreadable or another report; "
                    "kept, so it is sent again",
                    leftover,
                )
                continue
            try:
                remove_file(leftover)
            except OSError as exc:
                log.warning("cannot remove %s (also in failed/): %s", leftover, exc)
                self._stranded.add(name)
                continue
            finished += 1
        if finished:
            fsync_dir(self.pending_dir)
            log.info("finished %d move(s) to failed/ that a stop interrupted", finished)

    @staticmethod
    def _same_report(kept: Path, leftover: Path) -> bool:
        try:
            kept_envelope, _ = decode_item(kept.read_bytes())
            leftover_envelope, _ = decode_item(leftover.read_bytes())
        except (OSError, CorruptQueueFile):
            return False
        return kept_envelope.id == leftover_envelope.id

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from the writing thread) after reports are added."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def _notify(self) -> None:
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:
                log.exception("queue listener failed")

    # --- counts and scans ---------------------------------------------------------

    def counts(self) -> QueueCounts:
        with self._lock:
            self._ensure_scanned_locked()
            if self._requeued_elsewhere():
                self._scan_locked()
            if self._unwritten_reasons:
                self._write_reasons_locked()
            now = math.floor(time.time())
            for second in [s for s in self._backoff if s <= now]:
                del self._backoff[second]
            return QueueCounts(
                pending=self._pending,
                failed=self._failed,
                in_flight=len(self._claimed),
                in_backoff=sum(self._backoff.values()),
                quarantined=self._quarantined,
            )

    def _ensure_scanned_locked(self) -> None:
        if not self._scanned:
            self._scan_locked()

    def _window_capacity(self) -> int:
        if self._fixed_window:
            return self._fixed_window
        return max(MIN_WINDOW, min(MAX_WINDOW, self._pending // 10))

    def _scan_locked(self) -> None:
        """Re-read ``pending/``: refill the window and re-count, in one pass of names."""
        now_ns = time.time_ns()
        total = 0
        backoff: Counter[int] = Counter()
        junk: list[str] = []
        claimed = self._claimed
        unreadable = self._unreadable
        held_on_disk: set[str] = set()
        stranded = self._stranded

        def names() -> Iterator[str]:
            nonlocal total
            with os.scandir(self.pending_dir) as entries:
                for entry in entries:
                    name = entry.name
                    due = due_ns_of(name)
                    if due is None:
                        if (
                            not name.endswith(TEMP_SUFFIX)
                            and len(junk) < _MAX_JUNK_PER_SCAN
                            and entry.is_file(follow_symlinks=False)
                        ):
                            junk.append(name)
                        continue
                    if name in stranded:
                        continue
                    total += 1
                    if due > now_ns:
                        backoff[math.ceil(due / 1e9)] += 1
                    if name in unreadable:
                        held_on_disk.add(name)
                    elif name not in claimed:
                        yield name

        capacity = self._window_capacity()
        smallest = heapq.nsmallest(capacity + 1, names())
        self._window.reset(
            smallest[:capacity], more_on_disk=len(smallest) > capacity, capacity=capacity
        )
        self._pending = total
        for gone in unreadable.keys() - held_on_disk:  # removed by hand while held
            del unreadable[gone]
            self._read_failures.pop(gone, None)
        self._backoff = backoff
        self._failed = _count_files(self.failed_dir, lambda n: due_ns_of(n) is not None)
        # re-counted too: the operator deletes or repairs quarantined files by hand
        self._quarantined = _count_files(self.quarantine_dir, _is_quarantined_file)
        self._scanned = True
        self._last_scan = time.monotonic()
        for name in junk:
            self._quarantine_locked(
                name,
                "its name is not a queue file name (<due>-<id>.json); something "
                "other than pywats-client put it in pending/",
            )

    # --- adding -------------------------------------------------------------------

    def enqueue(self, items: Sequence[NewReport]) -> None:
        """Queue ``items``; durable when this returns.

        Each file is written and fsync'd, then all are renamed into ``pending/``
        and the folder is fsync'd once. On any error nothing of the batch stays
        visible; a full disk raises :class:`DiskFullError`.
        """
        if not items:
            return
        prepared = [(next_due_ns(), item) for item in items]
        written: list[tuple[Path, str]] = []
        try:
            for due_ns, item in prepared:
                name = make_name(due_ns, item.id)
                envelope = Envelope(
                    id=item.id,
                    source_name=item.source_name,
                    source_sha256=item.source_sha256,
                    converter=item.converter,
                    created_at=epoch_to_iso(due_ns / 1e9),
                )
                data = encode_item(envelope, item.report)
                written.append((write_temp(self.tmp_dir, name, data, self._take_spare()), name))
            self._publish(written)
        except BaseException as exc:
            for tmp, _ in written:
                remove_quietly(tmp)
            if is_disk_full(exc):
                raise DiskFullError(
                    f"{self.path}: disk full while queueing {len(items)} report(s) from "
                    f"{items[0].source_name!r}; nothing was queued. Free space on that disk; "
                    "queueing resumes by itself"
                ) from exc
            raise
        fsync_dir(self.pending_dir)
        self._notify()

    def _publish(self, written: list[tuple[Path, str]]) -> None:
        """Rename temp files into ``pending/``, all or none."""
        done: list[str] = []
        with self._lock:
            try:
                for tmp, name in written:
                    replace_file(tmp, self.pending_dir / name)
                    done.append(name)
            except BaseException:
                for name in done:
                    remove_quietly(self.pending_dir / name)
                raise
            self._pending += len(done)
            if self._scanned:
                for name in done:
                    self._window.offer(name)

    # --- taking -------------------------------------------------------------------

    def claim(self, *, scan: bool = True) -> QueueItem | None:
        """The next due report, now marked in flight; ``None`` if none is due.

        The caller must end every claim with :meth:`complete`,
        :meth:`retry_later`, :meth:`dead_letter` or :meth:`release`.
        Corrupt files met on the way are quarantined; files that cannot be read
        (permissions, a scanner holding them, I/O errors) are skipped for a
        while and tried again (see :meth:`read_problem`).

        With ``scan=False`` it also returns ``None`` where finding the next report
        would mean listing ``pending/`` (the first claim, a used-up window of
        names, a stale one, reports requeued by another process), and leaves a
        file it cannot read or decode where it is: a claim that reads only a
        small file is quick enough for an event loop, a listing of 100,000
        names (about 0.15 s), a failing disk or a quarantine (fsyncs) is not.
        The caller then claims again with ``scan=True`` in a thread.
        """
        unreadable_here = 0
        while True:
            with self._lock:
                name = self._pop_due_locked(scan)
                if name is None:
                    return None
                self._claimed[name] = None
            try:
                raw = (self.pending_dir / name).read_bytes()
            except FileNotFoundError:
                with self._lock:  # removed behind our back: forget it
                    self._claimed.pop(name, None)
                    self._read_failures.pop(name, None)
                    self._pending = max(0, self._pending - 1)
                continue
            except OSError as exc:
                if not scan:
                    self._hand_back(name)
                    return None
                with self._lock:
                    self._claimed.pop(name, None)
                    self._hold_unreadable_locked(name, exc)
                unreadable_here += 1
                if unreadable_here >= _MAX_UNREADABLE_PER_CLAIM:
                    raise  # not one bad file: the folder or disk is failing
                continue
            except BaseException:
                self._hand_back(name)
                raise
            try:
                envelope, report = decode_item(raw)
            except CorruptQueueFile as exc:
                if not scan:
                    self._hand_back(name)
                    return None
                with self._lock:
                    self._claimed.pop(name, None)
                    self._read_failures.pop(name, None)
                    self._quarantine_locked(name, str(exc))
                continue
            item = QueueItem(name=name, state="pending", envelope=envelope, report=report)
            with self._lock:
                self._claimed[name] = item
                self._read_failures.pop(name, None)
            return item

    def _hand_back(self, name: str) -> None:
        """Un-claim ``name`` before it was read: it stays next in line."""
        with self._lock:
            self._claimed.pop(name, None)
            self._window.offer(name)

    def _hold_unreadable_locked(self, name: str, exc: OSError) -> None:
        self._read_failures[name] += 1
        failures = self._read_failures[name]
        hold = min(_UNREADABLE_FIRST_HOLD * 2 ** min(failures - 1, 16), _UNREADABLE_MAX_HOLD)
        error = exc.strerror or str(exc)
        self._unreadable[name] = (time.monotonic() + hold, error)
        if len(self._unreadable) > _MAX_UNREADABLE_PER_CLAIM:
            return  # a failing disk: the uploader's own error says so, once per hold
        log.warning(
            "cannot read queued report %s (%s); it stays queued, is tried again in %g s, "
            "and the other reports go on. Check the file's permissions, a virus scanner "
            "holding it, or the disk",
            self.pending_dir / name,
            error,
            hold,
        )

    def _release_unreadable_locked(self) -> None:
        """Offer unreadable files whose hold ran out to the window again."""
        now = time.monotonic()
        for name, (retry_at, _) in list(self._unreadable.items()):
            if retry_at <= now:
                del self._unreadable[name]
                self._window.offer(name)

    def read_problem(self) -> str | None:
        """Why queued reports are being skipped, for status; None when none are."""
        with self._lock:
            if not self._unreadable:
                return None
            name, (_, error) = max(self._unreadable.items(), key=lambda i: i[1][0])
            return (
                f"cannot read {len(self._unreadable)} queued report(s), e.g. "
                f"{self.pending_dir / name} ({error}, {self._read_failures[name]} time(s) in a "
                "row); they stay queued and are tried again. Check the file's permissions, a "
                "virus scanner holding it, or the disk"
            )

    def _requeued_elsewhere(self, *, note: bool = True) -> bool:
        """Whether another process requeued reports since we last looked (one stat).

        ``note=False`` leaves the change to be seen again, by the claim that
        will scan for it.
        """
        marker = self._marker_mtime()
        if marker == self._marker_seen:
            return False
        if note:
            self._marker_seen = marker
        return True

    def _marker_mtime(self) -> int:
        try:
            return self.requeue_marker.stat().st_mtime_ns
        except OSError:
            return 0

    def claim_many(self, limit: int, *, scan: bool = True) -> list[QueueItem]:
        """Up to ``limit`` due reports, as :meth:`claim` (one call for several)."""
        items: list[QueueItem] = []
        try:
            while len(items) < limit and (item := self.claim(scan=scan)) is not None:
                items.append(item)
        except OSError:
            if not items:
                raise
            # these go out now; the error comes back at the next claim
        except BaseException:
            self.release_many(items)
            raise
        return items

    def _pop_due_locked(self, scan: bool = True) -> str | None:
        if not self._scanned and not scan:
            return None
        self._ensure_scanned_locked()
        if self._unreadable:
            self._release_unreadable_locked()
        now_ns = time.time_ns()
        window = self._window
        head = window.peek()
        stale = time.monotonic() - self._last_scan >= self._rescan_interval
        if (head is None or not self._is_due(head, now_ns)) and self._requeued_elsewhere(note=scan):
            stale = True
        if head is None:
            if window.bound is not None or self._pending > self._out_of_window() or stale:
                if not scan:
                    return None
                self._scan_locked()
                head = window.peek()
        elif stale and not self._is_due(head, now_ns):
            if not scan:
                return None
            self._scan_locked()
            head = window.peek()
        if head is None or not self._is_due(head, now_ns):
            return None
        return window.pop()

    def _out_of_window(self) -> int:
        """Pending names that a scan leaves out of the window: claimed or held unreadable."""
        return len(self._claimed) + len(self._unreadable)

    def _is_due(self, name: str, now_ns: int) -> bool:
        """Due now, or "due" so far ahead that only a clock stepped back explains it.

        No retry is ever scheduled more than ``max_delay`` ahead, so a report
        due later than that was queued while the clock ran fast: send it now
        rather than wait out the clock's error.
        """
        due = due_ns_of(name) or 0
        return due <= now_ns or due > now_ns + int((self.max_delay + _CLOCK_SLACK) * 1e9)

    def seconds_until_due(self) -> float | None:
        """Seconds until the next known report is due (0: now); ``None``: none known."""
        with self._lock:
            head = self._window.peek()
            if head is None:
                more = self._window.bound is not None or self._pending > self._out_of_window()
                if more:
                    return 0.0
                if self._unreadable:
                    soonest = min(at for at, _ in self._unreadable.values())
                    return max(0.0, soonest - time.monotonic())
                return None
            now_ns = time.time_ns()
            if self._is_due(head, now_ns):
                return 0.0
            return ((due_ns_of(head) or 0) - now_ns) / 1e9

    # --- finishing a claim ---------------------------------------------------------------

    def complete(self, item: QueueItem, *, flush_when_full: bool = True) -> None:
        """The server accepted ``item``: delete it (or archive it in ``sent/``).

        The file is renamed out of ``pending/`` at once (a cheap step, so the
        queue's lock is held briefly); the next :meth:`flush` makes the removal
        durable (the uploader flushes twice a second) and then deletes the file
        or keeps it for a new report to overwrite. A power cut before that only
        means the report is sent again, under the same id, which the server
        replaces. After 1,000 removals without a flush it flushes itself,
        unless ``flush_when_full`` is False (an event loop: that fsync is its
        flusher's job).
        """
        source = self.pending_dir / item.name
        if self.archive_sent:
            target = self.sent_dir / item.name
        else:  # a temp name: a crash before the delete leaves it to the start-up sweep
            target = self.tmp_dir / f"{item.name}.sent{TEMP_SUFFIX}"
        with self._lock:
            try:
                replace_file(source, target)
                if not self.archive_sent:
                    self._trash.append(target)
            except FileNotFoundError:
                pass
            self._claimed.pop(item.name, None)
            self._pending = max(0, self._pending - 1)
            self._changes += 1
            self._spares_closed = False
            overflowing = len(self._trash) >= _MAX_TRASH
        if overflowing and flush_when_full:
            self.flush()

    def flush(self, *, keep_spares: bool = True) -> None:
        """Make removals by :meth:`complete` durable (one folder fsync), then reuse or delete.

        Up to :data:`_MAX_SPARES` of the removed files are kept, for new reports
        to overwrite (see :func:`write_temp`), the rest deleted.
        ``keep_spares=False`` (the last flush at stop) deletes the kept ones too,
        and so does every flush after it until a report is completed again: a
        stopped station leaves no temp files.
        """
        with self._lock:
            trash, self._trash = self._trash, []
            if self._unwritten_reasons:
                self._write_reasons_locked()
        if self._synced < self._changes:
            self._group_sync(self._changes)
        with self._lock:  # their removal from pending/ is durable now: safe to overwrite
            self._spares_closed = self._spares_closed or not keep_spares
            if not self._spares_closed:
                kept = max(0, _MAX_SPARES - len(self._spares))
                self._spares += trash[:kept]
                trash = trash[kept:]
            else:
                trash += self._spares
                self._spares = []
        for path in trash:
            remove_quietly(path)
        for name in list(self._stranded):
            try:
                remove_file(self.pending_dir / name)
            except OSError:
                continue  # still held; next flush
            with self._lock:
                self._stranded.discard(name)

    def retry_later(
        self, item: QueueItem, *, delay: float, error: str, status: int | None = None
    ) -> Envelope:
        """Count a failed attempt and keep ``item`` pending until ``delay`` s from now.

        ``delay`` is capped at :attr:`max_delay`.
        """
        due = time.time() + min(max(0.0, delay), self.max_delay)
        due_ns = int(due * 1e9)
        envelope = item.envelope.updated(
            attempts=item.envelope.attempts + 1,
            next_attempt_at=epoch_to_iso(due),
            last_error=error,
            last_status=status,
        )
        new_name = make_name(due_ns, item.id)
        tmp = self._write_or_release(item, new_name, encode_item(envelope, item.report))
        with self._lock:
            try:
                # rename first: a crash between the two steps leaves one file, never two
                if new_name != item.name:
                    replace_file(self.pending_dir / item.name, self.pending_dir / new_name)
                replace_file(tmp, self.pending_dir / new_name)
            except BaseException:
                remove_quietly(tmp)
                self._claimed.pop(item.name, None)
                self._window.offer(item.name)
                raise
            self._claimed.pop(item.name, None)
            self._backoff[math.ceil(due)] += 1
            self._window.offer(new_name)
            self._changes += 1
            change = self._changes
        self._group_sync(change)
        return envelope

    def dead_letter(
        self, item: QueueItem, *, reason: str, status: int | None = None, count_attempt: bool = True
    ) -> Envelope:
        """Move ``item`` to ``failed/`` with ``reason``; it is not retried automatically."""
        envelope = item.envelope.updated(
            attempts=item.envelope.attempts + (1 if count_attempt else 0),
            next_attempt_at=None,
            last_error=reason,
            last_status=status,
            failed_at=epoch_to_iso(time.time()),
        )
        tmp = self._write_or_release(item, item.name, encode_item(envelope, item.report))
        with self._lock:
            try:
                replace_file(tmp, self.failed_dir / item.name)
            except BaseException:
                remove_quietly(tmp)
                self._claimed.pop(item.name, None)
                self._window.offer(item.name)
                raise
            self._failed += 1  # here: a scan from now on counts the file in failed/
        # the failed copy is durable before the pending one goes: a power cut in
        # between leaves both, which the next start finishes (never neither)
        try:
            fsync_dir(self.failed_dir)
        except BaseException:
            with self._lock:  # undone: the report stays pending only, to be sent again
                remove_quietly(self.failed_dir / item.name)
                self._failed = max(0, self._failed - 1)
                self._claimed.pop(item.name, None)
                self._window.offer(item.name)
            raise
        with self._lock:
            try:
                remove_file(self.pending_dir / item.name)
            except OSError as exc:  # never sent again; flush() removes it once free
                log.warning("report %s is in failed/ but still in pending/: %s", item.id, exc)
                self._stranded.add(item.name)
            self._claimed.pop(item.name, None)
            self._pending = max(0, self._pending - 1)
            self._changes += 1
            change = self._changes
        self._group_sync(change)
        return envelope

    def release(self, item: QueueItem) -> None:
        """Give ``item`` back unchanged (no attempt counted), e.g. while the server is away.

        Safe to call twice: once the name is claimed again, an old item's release
        does nothing (else two uploads of one report could run at once).
        """
        with self._lock:
            holder = self._claimed.get(item.name, item)
            if holder is not item:
                return
            self._claimed.pop(item.name, None)
            self._window.offer(item.name)

    def release_many(self, items: Iterable[QueueItem]) -> None:
        """:meth:`release` for several reports."""
        for item in items:
            self.release(item)

    def _write_or_release(self, item: QueueItem, name: str, data: bytes) -> Path:
        try:
            return write_temp(self.tmp_dir, name, data, self._take_spare())
        except BaseException as exc:
            self.release(item)
            if is_disk_full(exc):
                raise DiskFullError(
                    f"{self.path}: disk full while updating queued report {item.id}; it stays "
                    "queued as it was. Free space on that disk"
                ) from exc
            raise

    def _take_spare(self) -> Path | None:
        with self._lock:
            return self._spares.pop() if self._spares else None  # none once closed

    def _group_sync(self, change: int) -> None:
        """fsync ``pending/`` (and ``sent/``) once for every change up to ``change``."""
        with self._sync_lock:
            if self._synced >= change:
                return
            target = self._changes
            fsync_dir(self.pending_dir)
            if self.archive_sent:
                fsync_dir(self.sent_dir)
            self._synced = target

    def _quarantine_locked(self, name: str, reason: str) -> None:
        source = self.pending_dir / name
        try:
            target = move_no_overwrite(source, self.quarantine_dir)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("cannot quarantine corrupt queue file %s: %s", source, exc)
            return
        self._pending = max(0, self._pending - 1) if due_ns_of(name) is not None else self._pending
        self._quarantined += 1
        self._unwritten_reasons[self.quarantine_dir / (target.name + _REASON_SUFFIX)] = (
            _quarantine_note(name, reason)
        )
        self._write_reasons_locked()
        with contextlib.suppress(OSError):
            fsync_dir(self.pending_dir)
        log.warning("quarantined corrupt queue file %s: %s", target, reason)

    def _write_reasons_locked(self) -> None:
        """Write pending quarantine reason files; on a full disk they wait for a later call."""
        for path, text in list(self._unwritten_reasons.items()):
            try:
                atomic_write_text(path, text, for_people=True)
            except OSError as exc:
                log.warning("cannot write %s yet (%s); will retry", path, exc)
                return
            del self._unwritten_reasons[path]

    # --- operator tools ------------------------------------------------------------------

    def iter_items(
        self,
        state: QueueState,
        *,
        on_corrupt: Callable[[str, str], None] | None = None,
    ) -> Iterator[QueueItem]:
        """Reports in ``state``, next due first. Reads one file at a time."""
        folder = self.path / state
        for name in sorted(_list_names(folder)):
            try:
                raw = (folder / name).read_bytes()
            except FileNotFoundError:
                continue  # uploaded or moved while we were listing
            try:
                envelope, report = decode_item(raw)
            except CorruptQueueFile as exc:
                if on_corrupt is not None:
                    on_corrupt(name, str(exc))
                continue
            yield QueueItem(name=name, state=state, envelope=envelope, report=report)

    def contains(self, report_id: str) -> bool:
        """Whether a report with this id is pending or failed (scans the folders)."""
        key = key_for_id(report_id)
        return any(
            key_of(name) == key
            for folder in (self.pending_dir, self.failed_dir)
            for name in _list_names(folder)
        )

    def requeue(self, ids: Iterable[str] | None = None) -> RequeueResult:
        """Move failed reports (``ids``, or all when ``None``) back to pending.

        Attempts are reset; the report id never changes. The new pending files
        are made durable before any failed copy is removed, so a crash or power
        cut never loses a report (at worst a report is both pending and still
        listed as failed; sending it twice keeps its id). Safe while the worker
        runs.
        """
        wanted = None if ids is None else {key_for_id(i): i for i in ids}
        found: set[str] = set()
        result = RequeueResult()
        moved: list[Path] = []
        try:
            for name in sorted(_list_names(self.failed_dir)):
                if wanted is not None and key_of(name) not in wanted:
                    continue
                source = self.failed_dir / name
                try:
                    envelope, report = decode_item(source.read_bytes())
                except FileNotFoundError:
                    continue
                except CorruptQueueFile as exc:
                    result.unreadable.append((name, str(exc)))
                    continue
                envelope = envelope.updated(attempts=0, next_attempt_at=None, failed_at=None)
                new_name = make_name(next_due_ns(), envelope.id)
                tmp = write_temp(self.tmp_dir, new_name, encode_item(envelope, report))
                with self._lock:
                    replace_file(tmp, self.pending_dir / new_name)
                    self._pending += 1
                    if self._scanned:
                        self._window.offer(new_name)
                moved.append(source)
                result.requeued.append(envelope.id)
                found.add(key_of(name))
        finally:
            if moved:
                self._finish_requeue(moved)
        if wanted is not None:
            result.missing.extend(v for k, v in wanted.items() if k not in found)
        return result

    def _finish_requeue(self, moved: list[Path]) -> None:
        """Remove the failed copies of requeued reports, once their new copies are durable."""
        fsync_dir(self.pending_dir)
        for source in moved:
            remove_quietly(source)
        with self._lock:
            self._failed = max(0, self._failed - len(moved))
        fsync_dir(self.failed_dir)
        self._touch_marker()
        self._notify()

    def _touch_marker(self) -> None:
        try:
            self.requeue_marker.touch(mode=0o600)
            os.utime(self.requeue_marker)
        except OSError as exc:  # the worker still finds them at its next periodic scan
            log.warning("cannot signal the worker about requeued reports: %s", exc)


def _list_names(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return [e.name for e in entries if due_ns_of(e.name) is not None]
    except FileNotFoundError:
        return []


def _count_files(folder: Path, accept: Callable[[str], bool]) -> int:
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if accept(e.name))
    except FileNotFoundError:
        return 0


def _is_quarantined_file(name: str) -> bool:
    """A file set aside in ``quarantine/``, not its reason file or a temp file."""
    return not name.endswith((_REASON_SUFFIX, TEMP_SUFFIX))


def _quarantine_note(name: str, reason: str, when: float | None = None) -> str:
    """``when``: the file's own time, for a reason written again at a later start."""
    moved = epoch_to_iso(time.time() if when is None else when)
    return (
        f"{moved}: {name} was moved here from pending/ because it cannot be used: "
        f"{reason}.\nIts report was not uploaded. If you can repair the file, move it "
        "back into pending/; otherwise keep it for diagnosis or delete it.\n"
    )
