"""FileWatcher: finds complete result files in the watch folders and hands them over once.

File-system events (watchdog) are only hints: they are lost on network shares,
under bursts and when an observer thread dies. The truth is a full rescan at
start and every ``rescan_interval``. Each file seen is tracked until it is
ready (see :mod:`._readiness`), then *claimed*: handed to the intake exactly
once and never offered again until the intake releases it. Done and Error
folders are never scanned.

The watcher only looks at files on a short tick while some are waiting to
become ready; otherwise it sleeps until an event, the next rescan, or the
observer health check (every ``health_interval`` s), so idle stations use no CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from pywats_client.core.config import ClientConfig
from pywats_client.services._observer import build_observer
from pywats_client.services._post_actions import count_parked_in
from pywats_client.services._readiness import ReadinessTracker, SourceFile, probe
from pywats_client.services._scan import FilterRules, WatchRoot, build_roots, root_for, scan_root

__all__ = ["FileWatcher", "SourceFile"]

log = logging.getLogger(__name__)

#: Event types that may mean "a result file appeared or changed".
_HINT_EVENTS = {"created", "modified", "moved", "closed"}
#: The events asked of the observer. Without a filter, inotify also reports every
#: open and read-only close, and the service's own reads of each result file
#: (sniff, convert, hash) made about eight such events per file, each one woken
#: through watchdog's three threads: a fifth of the intake's CPU under a burst.
#: Deletions are not asked for: a file that goes is found gone when next looked
#: at, and every source the service moves to Done (a link, then an unlink) or
#: deletes would wake the watcher for nothing (see also ``_observer``).
_EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirMovedEvent,
]
#: The per-user inotify limit behind each error of setting up file events (Linux).
_INOTIFY_LIMITS = {
    errno.EMFILE: "fs.inotify.max_user_instances",
    errno.ENOSPC: "fs.inotify.max_user_watches",
}
#: Seconds to let a burst of events gather before looking at the files they name.
HINT_DEBOUNCE = 0.01
#: Longest wait before rebuilding a dead observer again.
_MAX_OBSERVER_BACKOFF = 60.0
#: Rescans a note must stay away before it is logged again when it comes back: a
#: file that comes and goes (a tester's temp name no pattern covers) logs once.
NOTE_FORGOTTEN_AFTER = 10

SkipFilter = Callable[[Path, int, int], bool]


class _ObserverLike(Protocol):
    daemon: bool

    def schedule(
        self,
        event_handler: Any,
        path: str,
        *,
        recursive: bool = ...,
        follow_symlink: bool = ...,
        event_filter: list[type[FileSystemEvent]] | None = ...,
    ) -> Any: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def join(self, timeout: float | None = ...) -> None: ...
    def is_alive(self) -> bool: ...

    @property
    def emitters(self) -> Any: ...


class _Hints:
    """Paths named by events, collected from the observer thread for the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wake: asyncio.Event) -> None:
        self._loop = loop
        self._wake = wake
        self._lock = threading.Lock()
        self._paths: set[str] = set()
        self._rescan = False
        self._signalled = False

    def push(self, path: str | None = None, *, rescan: bool = False) -> None:
        with self._lock:
            if path is not None:
                self._paths.add(path)
            self._rescan = self._rescan or rescan
            if self._signalled:
                return
            self._signalled = True
        with contextlib.suppress(RuntimeError):  # loop closed while stopping
            self._loop.call_soon_threadsafe(self._wake.set)

    @property
    def pending(self) -> bool:
        """Events arrived that the loop has not taken yet."""
        return self._signalled

    def take(self) -> tuple[set[str], bool]:
        with self._lock:
            paths, rescan = self._paths, self._rescan
            self._paths, self._rescan, self._signalled = set(), False, False
        return paths, rescan


class _Handler(FileSystemEventHandler):
    def __init__(self, hints: _Hints) -> None:
        self._hints = hints

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _HINT_EVENTS:
            return
        if event.is_directory:
            if event.event_type in ("created", "moved"):
                self._hints.push(rescan=True)  # files may have arrived with the folder
            return
        if event.event_type == "moved":
            self._hints.push(os.fsdecode(event.dest_path))
        self._hints.push(os.fsdecode(event.src_path))


class FileWatcher:
    """Watches ``config.watch_paths`` and yields ready files through :meth:`get_ready`.

    ``skip(path, size, mtime_ns)`` tells the watcher that a file was already
    processed (post action ``keep``) so it is not offered again.
    ``observer_factory`` builds the watchdog observer (tests pass one that
    delivers no events to prove the rescan alone finds everything).
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        skip: SkipFilter | None = None,
        empty_grace: float = 60.0,
        defer_after: float | None = None,
        health_interval: float = 2.0,
        ready_buffer: int = 256,
        observer_factory: Callable[[], _ObserverLike] | None = None,
    ) -> None:
        self.config = config
        self.roots: list[WatchRoot] = build_roots(config)
        self.rules = FilterRules.for_config(config)
        self._skip = skip
        self._tracker = ReadinessTracker(
            ready_after=config.ready_after,
            marker=config.ready_marker,
            max_file_size=config.max_file_size,
            empty_grace=empty_grace,
            defer_after=defer_after,
        )
        self._health_interval = health_interval
        self._ready_cap = ready_buffer
        self._observer_factory: Callable[[], _ObserverLike] = observer_factory or build_observer
        self._observer: _ObserverLike | None = None
        #: (st_dev, st_ino) of each root when its events were set up: a folder
        #: moved away and made again is another folder, whose events nobody watches.
        self._watched: dict[Path, tuple[int, int]] = {}
        #: Roots whose identity differed at the last check: a second check in a row
        #: confirms it (some shares report a passing wrong id).
        self._suspect: set[Path] = set()
        self._observer_backoff = 1.0
        self._observer_retry_at = 0.0
        self._ready: deque[SourceFile] = deque()
        self._claimed: set[Path] = set()
        #: Claimed paths that had events meanwhile: a tester re-using one name may
        #: write the next result while the last is still being moved to Done.
        self._stirred: set[Path] = set()
        #: When each path was last released (a scan started earlier may still list it).
        self._released: dict[Path, float] = {}
        self._seen: set[Path] = set()
        self._deferred: set[Path] = set()
        #: Sources parked in each Error folder (with their reasons) at the last
        #: rescan; None before the first or when one could not be read.
        self.parked: dict[Path, int] | None = None
        self._paused = False
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._ready_event: asyncio.Event | None = None
        self._hints: _Hints | None = None
        self._task: asyncio.Task[None] | None = None
        self._rescan_due = 0.0
        self._problems: dict[str, str] = {}
        #: Results the last rescan saw but cannot take (sub-folders, links); logged once.
        self._noted: dict[Path, int] = {}  # note -> rescans since last seen
        #: Distinct files found in the watch folders (each file counted once).
        self.files_seen = 0
        #: Times a dead observer thread was rebuilt.
        self.observer_restarts = 0
        #: Full rescans done.
        self.rescans = 0

    # --- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        """Start the observer and the loop; the first full scan runs at once."""
        if self._task is not None:
            return
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._ready_event = asyncio.Event()
        self._hints = _Hints(loop, self._wake)
        self._stopping = False
        await asyncio.to_thread(self._ensure_folders)
        await asyncio.to_thread(self._start_observer)
        self._rescan_due = 0.0
        self._task = asyncio.create_task(self._run(), name="file-watcher")

    async def stop(self) -> None:
        """Stop the loop and the observer thread; claimed files stay claimed."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._ready_event is not None:
            self._ready_event.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        observer, self._observer = self._observer, None
        if observer is not None:
            await asyncio.to_thread(_stop_observer, observer)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # --- the intake's side ------------------------------------------------------------

    async def get_ready(self, max_items: int, timeout: float | None = None) -> list[SourceFile]:
        """Up to ``max_items`` ready files (claimed for the caller); waits for the first.

        Returns an empty list on timeout or when the watcher stops.
        """
        assert self._ready_event is not None, "start() the watcher first"
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready and not self._stopping:
            self._ready_event.clear()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return []
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ready_event.wait(), remaining)
        was_full = len(self._ready) >= self._ready_cap
        batch: list[SourceFile] = []
        while self._ready and len(batch) < max_items:
            batch.append(self._ready.popleft())
        if was_full and self._wake is not None:
            self._wake.set()  # room again: let the loop look at waiting files
        return batch

    def claim(self, path: Path) -> None:
        """Take ``path`` out of the watcher's hands (recovery converts it itself)."""
        self._claimed.add(path)
        self._seen.add(path)
        self._tracker.discard(path)

    def release(self, path: Path) -> None:
        """The intake is done with ``path``; if the file is still there it may be seen again."""
        self._claimed.discard(path)
        self._seen.discard(path)
        self._released[path] = time.monotonic()
        if path in self._stirred:
            self._stirred.discard(path)
            self.notice(path)

    def notice(self, path: Path) -> None:
        """Look at ``path`` again soon, as if an event named it (e.g. rewritten while claimed)."""
        if self._hints is not None:
            self._hints.push(str(path))

    def pause(self) -> None:
        """Stop looking at files (backpressure); events are still collected."""
        self._paused = True

    def resume(self) -> None:
        """Look at files again, starting with a full rescan."""
        if self._paused:
            self._paused = False
            self.request_rescan()

    def request_rescan(self) -> None:
        self._rescan_due = 0.0
        if self._wake is not None:
            self._wake.set()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def problems(self) -> list[str]:
        """Current problems (missing folder, dead observer), for the status warnings."""
        return list(self._problems.values())

    # --- loop ------------------------------------------------------------------

    async def _run(self) -> None:
        """The loop; an unexpected error is logged and the loop goes on after a pause."""
        while not self._stopping:
            try:
                await self._loop()
            except Exception as exc:
                log.exception("file watcher loop failed; continuing in 1 s")
                self._problems["loop"] = f"file watcher error: {type(exc).__name__}: {exc}"
                await asyncio.sleep(1.0)

    async def _loop(self) -> None:
        assert self._wake is not None and self._hints is not None
        next_health = time.monotonic() + self._health_interval
        while not self._stopping:
            now = time.monotonic()
            if now >= next_health:
                await self._check_observer(now)
                next_health = now + self._health_interval
            paths, rescan = self._hints.take()
            if rescan:
                self._rescan_due = 0.0
            if not self._paused:
                if now >= self._rescan_due:
                    self._rescan_due = now + self.config.rescan_interval
                    await self._rescan()
                self._absorb_hints(paths, time.monotonic())
                if len(self._ready) < self._ready_cap:
                    await self._check_candidates()
            elif now >= self._rescan_due:  # no file is taken, parked ones are still counted
                self._rescan_due = now + self.config.rescan_interval
                await self._recount_parked()
            deadlines = [next_health, self._rescan_due]
            if not self._paused and len(self._ready) < self._ready_cap:
                tracked = self._tracker.next_deadline()
                if tracked is not None:
                    deadlines.append(tracked)
            timeout = max(0.0, min(deadlines) - time.monotonic())
            self._wake.clear()
            if not self._hints_pending():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            if self._hints_pending():
                # Events come in bursts (one file's create/modify/close, many files
                # at once): gather them briefly so one probe round covers them all.
                await asyncio.sleep(HINT_DEBOUNCE)

    def _hints_pending(self) -> bool:
        return self._hints is not None and self._hints.pending

    def _absorb_hints(self, paths: set[str], now: float) -> None:
        for text in paths:
            path = Path(text)
            marked = self.rules.marked_name(path.name)
            if marked is not None:
                path = path.with_name(marked)
            if not self.rules.accepts(path.name):
                continue
            if path in self._claimed:
                self._stirred.add(path)
                continue
            if path in self._tracker:
                self._tracker.touch(path)
                continue
            root = root_for(self.roots, path)
            if root is not None:
                self._track(path, root, now)

    def _track(
        self, path: Path, root: WatchRoot, now: float, st: os.stat_result | None = None
    ) -> None:
        if st is not None:
            self._count_seen(path)
        if self._problems:
            self._problems.pop(f"created:{root.path}", None)
        self._deferred.discard(path)
        self._tracker.add(path, root, now, st)

    def _count_seen(self, path: Path) -> None:
        """Count a file once while it exists (late events for moved files do not count)."""
        if path not in self._seen:
            self._seen.add(path)
            self.files_seen += 1

    async def _rescan(self) -> None:
        errors: list[str] = []
        notes: dict[Path, str] = {}
        started = time.monotonic()
        found = await asyncio.to_thread(self._scan_all, errors, notes)
        # Files released while the scan ran were listed before they were moved away.
        moved = {p for p, when in self._released.items() if when >= started}
        self._released = {p: when for p, when in self._released.items() if when >= started}
        self.rescans += 1
        self._problems.pop("loop", None)
        self._set_problems("scan", errors)
        for where, note in notes.items():
            if where not in self._noted:  # once while it stays true, not every rescan
                log.warning("%s", note)
        self._noted = {
            where: gone + 1
            for where, gone in self._noted.items()
            if where not in notes and gone + 1 < NOTE_FORGOTTEN_AFTER
        } | dict.fromkeys(notes, 0)
        now = time.monotonic()
        for path, root, st in found:
            if path in self._claimed or path in self._tracker or path in moved:
                continue
            if self._skip is not None and self._skip(path, st.st_size, st.st_mtime_ns):
                continue
            self._track(path, root, now, st)
        present = {path for path, _, _ in found}
        for path in self._deferred - present:
            self._deferred.discard(path)
            self._seen.discard(path)
        await self._recount_parked()  # last: the files found are tracked whatever it meets

    def _scan_all(
        self, errors: list[str], notes: dict[Path, str]
    ) -> list[tuple[Path, WatchRoot, os.stat_result]]:
        found = []
        for root in self.roots:
            for path, st in scan_root(root, self.rules, errors, notes):
                found.append((path, root, st))
        return found

    def _count_parked(self) -> list[str]:
        """Count the sources parked in each Error folder (blocking); returns problems."""
        self.parked, problem = count_parked_in(root.error_dir for root in self.roots)
        return [problem] if problem else []

    async def _recount_parked(self) -> None:
        self._set_problems("parked", await asyncio.to_thread(self._count_parked))

    async def _check_candidates(self) -> None:
        probes = self._tracker.due(time.monotonic())
        if not probes:
            return
        results = await asyncio.to_thread(probe, probes, self.rules.marker)
        outcome = self._tracker.apply(results, time.monotonic())
        for path in outcome.appeared:
            self._count_seen(path)
        for path in outcome.gone:
            self._seen.discard(path)
        self._deferred.update(outcome.deferred)
        handed = outcome.ready + outcome.rejected
        for item in handed:
            if self._skip is not None and self._skip(item.path, item.size, item.mtime_ns):
                continue
            self._claimed.add(item.path)
            self._ready.append(item)
        if handed and self._ready_event is not None:
            self._ready_event.set()

    # --- folders and observer -------------------------------------------------------

    def _ensure_folders(self) -> None:
        for root in self.roots:
            if root.path.is_dir():
                self._problems.pop(f"folder:{root.path}", None)
                continue
            try:
                root.path.mkdir(parents=True, exist_ok=True)
                # A typo in watch_paths would otherwise watch an empty folder forever.
                log.warning(
                    "watch folder %s did not exist; created it (if the tester writes "
                    "elsewhere, fix watch_paths)",
                    root.path,
                )
                # ...and in status too, until the first file arrives there.
                self._problems[f"created:{root.path}"] = (
                    f"watch folder {root.path} did not exist and was created; no file has "
                    "arrived there yet (if the tester writes elsewhere, fix watch_paths)"
                )
            except OSError as exc:
                self._problems[f"folder:{root.path}"] = (
                    f"watch folder {root.path} cannot be created ({exc.strerror or exc}); "
                    "fix watch_paths or make the folder reachable"
                )
            else:
                self._problems.pop(f"folder:{root.path}", None)

    def _start_observer(self) -> None:
        """Build and start a new observer on every existing root (blocking)."""
        assert self._hints is not None
        try:  # e.g. the per-user limit of inotify instances (fs.inotify.max_user_instances)
            observer = self._observer_factory()
        except OSError as exc:
            self._problems["observer"] = self._no_events("file events unavailable", exc)
            self._observer = None
            return
        observer.daemon = True
        handler = _Handler(self._hints)
        self._watched = {}
        for root in self.roots:
            identity = _identity(root.path)
            if identity is None:
                continue
            self._watched[root.path] = identity
            try:
                # follow a watch folder given as a link (inotify would watch the link
                # itself: no events at all); a recursive watch would follow every link
                # below it too, so a linked recursive root relies on its rescans
                observer.schedule(
                    handler,
                    str(root.path),
                    recursive=root.recursive,
                    follow_symlink=not root.recursive,
                    event_filter=_EVENT_FILTER,
                )
            except OSError as exc:
                self._problems[f"events:{root.path}"] = self._no_events(
                    f"no file events for {root.path}", exc
                )
        try:
            observer.start()
        except OSError as exc:
            self._problems["observer"] = self._no_events("file events unavailable", exc)
            with contextlib.suppress(Exception):
                _stop_observer(observer)
            self._observer = None
            return
        self._problems.pop("observer", None)
        self._observer = observer

    def _no_events(self, what: str, exc: OSError) -> str:
        limit = _INOTIFY_LIMITS.get(exc.errno or 0) if sys.platform.startswith("linux") else None
        remedy = f" (raise the sysctl {limit})" if limit else ""
        return (
            f"{what} ({exc.strerror or exc}){remedy}; "
            f"relying on rescans every {self.config.rescan_interval:g} s"
        )

    def _observer_problem(self) -> str | None:
        """Why the file events cannot be trusted now, or None."""
        observer = self._observer
        if observer is None or not observer.is_alive():
            return "file event observer stopped"
        try:
            emitters = list(observer.emitters)
        except Exception:  # noqa: BLE001 - a broken observer is an unhealthy one
            return "file event observer is broken"
        if not all(e.is_alive() for e in emitters):
            return "file event observer stopped"
        existing = 0
        for root in self.roots:
            identity = _identity(root.path)
            if identity is None:
                continue
            existing += 1
            watched = self._watched.get(root.path)
            if watched is None or watched == identity:
                self._suspect.discard(root.path)
            elif root.path in self._suspect:
                self._suspect.discard(root.path)
                return f"watch folder {root.path} was replaced (moved away and made again)"
            else:
                self._suspect.add(root.path)
        return None if len(emitters) >= existing else "a watch folder has no file events yet"

    async def _check_observer(self, now: float) -> None:
        """Rebuild the observer if its thread (or an emitter) died, with capped backoff."""
        problem = await asyncio.to_thread(self._observer_problem)
        if problem is None:
            self._observer_backoff = 1.0
            return
        if now < self._observer_retry_at:
            return
        old, self._observer = self._observer, None
        if old is not None:
            log.warning("%s; rebuilding the file event observer", problem)
            await asyncio.to_thread(_stop_observer, old)
        await asyncio.to_thread(self._ensure_folders)
        await asyncio.to_thread(self._start_observer)
        if old is not None:
            self.observer_restarts += 1
        self._observer_retry_at = now + self._observer_backoff
        self._observer_backoff = min(self._observer_backoff * 2, _MAX_OBSERVER_BACKOFF)
        self.request_rescan()  # events were lost while it was down

    def _set_problems(self, kind: str, messages: list[str]) -> None:
        for key in [k for k in self._problems if k.startswith(f"{kind}:")]:
            del self._problems[key]
        for n, message in enumerate(dict.fromkeys(messages)):
            self._problems[f"{kind}:{n}"] = message


def _identity(folder: Path) -> tuple[int, int] | None:
    """The folder's (device, inode), or None if it is not a folder now."""
    try:
        st = folder.stat()
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return None
    # No inode number (some network or FAT file systems report 0): nothing to compare.
    return (st.st_dev, st.st_ino) if st.st_ino else (0, 0)


def _stop_observer(observer: _ObserverLike) -> None:
    with contextlib.suppress(Exception):
        observer.stop()
    with contextlib.suppress(Exception):
        observer.join(timeout=5.0)
