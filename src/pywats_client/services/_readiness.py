"""When is a result file complete? Stability tracking, marker files and open checks.

A tester may create a file and fill it for seconds; file events fire at the
first byte. A file is taken only when its size and mtime stayed the same for
``ready_after`` seconds (observed by us, on our monotonic clock, so clock skew
of a file server does not matter) and it can be opened the way a finished file
can (on Windows: no other handle may hold it open for writing). With
``ready_marker`` the writer says so itself: ``<file><marker>`` appears.

The state machine (:class:`ReadinessTracker`) is pure: time comes in as an
argument and file-system probing (:func:`probe`) is a separate blocking call,
so the watcher runs probes in a thread and the rules are tested with a fake clock.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pywats_client.services._scan import WatchRoot

__all__ = [
    "Probe",
    "ProbeResult",
    "ReadinessTracker",
    "SourceFile",
    "TrackerOutcome",
    "is_openable",
    "probe",
]

#: Shortest pause between two checks of a file that is not ready yet.
MIN_RECHECK = 0.05


@dataclass(frozen=True)
class SourceFile:
    """A result file the watcher handed over: where it is and what it looked like.

    ``reject_reason`` is set when the file can never be converted as it is
    (empty, too large): the intake moves it to the error folder with that reason.
    ``seen_changing``: the watcher saw it change after first seeing it, so a
    tester was writing it in place; a failed conversion may have read it
    half-written, and the intake gives it another chance before parking it.
    """

    path: Path
    watch_dir: Path
    done_dir: Path
    error_dir: Path
    size: int
    mtime_ns: int
    marker: Path | None = None
    reject_reason: str | None = None
    seen_changing: bool = False


@dataclass(frozen=True)
class Probe:
    """One file to look at; ``confirm``: it looked stable, so also test marker and open."""

    path: Path
    size: int
    mtime_ns: int
    confirm: bool


@dataclass(frozen=True)
class ProbeResult:
    path: Path
    size: int | None  # None: the file is gone
    mtime_ns: int = 0
    openable: bool | None = None  # None: not tested
    marker_present: bool | None = None  # None: not tested


def is_openable(path: Path) -> bool | None:
    """Can a finished file be opened now? ``None`` if the file is gone.

    On Windows the file is opened denying other writers, which fails with a
    sharing violation while the tester still has it open for writing. POSIX
    has no such check; a read open at least proves permissions.
    """
    if sys.platform == "win32":
        return _is_openable_windows(path)
    try:
        with open(path, "rb"):
            return True
    except FileNotFoundError:
        return None
    except OSError:
        return False


if sys.platform == "win32":  # pragma: no cover - exercised on Windows stations only
    import ctypes
    from ctypes import wintypes

    _GENERIC_READ = 0x80000000
    _FILE_SHARE_READ = 0x00000001
    _OPEN_EXISTING = 3
    _FILE_ATTRIBUTE_NORMAL = 0x80
    _INVALID_HANDLE = wintypes.HANDLE(-1).value
    _NOT_FOUND = (2, 3)  # ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND

    _kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    _kernel32.CreateFileW.restype = wintypes.HANDLE
    _kernel32.CreateFileW.argtypes = [
        wintypes.LPCWSTR,
        wintypes.DWORD,
        wintypes.DWORD,
        wintypes.LPVOID,
        wintypes.DWORD,
        wintypes.DWORD,
        wintypes.HANDLE,
    ]
    _kernel32.CloseHandle.argtypes = [wintypes.HANDLE]

    def _is_openable_windows(path: Path) -> bool | None:
        handle = _kernel32.CreateFileW(
            str(path),
            _GENERIC_READ,
            _FILE_SHARE_READ,
            None,
            _OPEN_EXISTING,
            _FILE_ATTRIBUTE_NORMAL,
            None,
        )
        if handle == _INVALID_HANDLE:
            return None if ctypes.get_last_error() in _NOT_FOUND else False
        _kernel32.CloseHandle(handle)
        return True


def probe(probes: Iterable[Probe], marker: str | None) -> list[ProbeResult]:
    """Stat each file and, for confirmations of an unchanged file, test marker and open.

    Blocking (several system calls per file): run it in a thread.
    """
    results = []
    for item in probes:
        try:
            st = item.path.stat()
        except OSError:
            results.append(ProbeResult(item.path, None))
            continue
        unchanged = st.st_size == item.size and st.st_mtime_ns == item.mtime_ns
        openable: bool | None = None
        marker_present: bool | None = None
        if item.confirm and unchanged:
            if marker:
                marker_present = Path(f"{item.path}{marker}").exists()
            if marker_present is not False and st.st_size > 0:
                openable = is_openable(item.path)
                if openable is None:
                    results.append(ProbeResult(item.path, None))
                    continue
        results.append(ProbeResult(item.path, st.st_size, st.st_mtime_ns, openable, marker_present))
    return results


@dataclass
class _Candidate:
    root: WatchRoot
    size: int = -1
    mtime_ns: int = -1
    first_seen: float = 0.0
    stable_since: float = 0.0
    next_check: float = 0.0
    empty_since: float | None = None
    seen_changing: bool = False


@dataclass
class TrackerOutcome:
    """What one round of probe results decided."""

    ready: list[SourceFile] = field(default_factory=list)
    rejected: list[SourceFile] = field(default_factory=list)
    gone: list[Path] = field(default_factory=list)
    deferred: list[Path] = field(default_factory=list)
    #: Files observed to exist for the first time (for the files-seen counter).
    appeared: list[Path] = field(default_factory=list)


class ReadinessTracker:
    """Files seen but not yet taken, and when each should be looked at next.

    Not thread-safe: owned by the watcher's event loop.
    """

    def __init__(
        self,
        *,
        ready_after: float,
        marker: str | None = None,
        max_file_size: int | None = None,
        empty_grace: float = 60.0,
        defer_after: float | None = None,
    ) -> None:
        self.ready_after = ready_after
        self.marker = marker
        self.max_file_size = max_file_size
        self.empty_grace = empty_grace
        #: A file not ready after this long is dropped until the next rescan or event.
        self.defer_after = defer_after if defer_after is not None else max(10.0, 5 * ready_after)
        self._items: dict[Path, _Candidate] = {}
        self._dirty: set[Path] = set()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, path: object) -> bool:
        return path in self._items

    def add(
        self, path: Path, root: WatchRoot, now: float, st: os.stat_result | None = None
    ) -> bool:
        """Start tracking ``path``; False if already tracked.

        With ``st`` (from a scan) that is the first observation; without, the
        file is probed at the next round.
        """
        if path in self._items:
            self._dirty.add(path)
            return False
        cand = _Candidate(root=root, first_seen=now, next_check=now)
        self._items[path] = cand
        if st is None:
            self._dirty.add(path)
        else:
            self._observe_change(cand, ProbeResult(path, st.st_size, st.st_mtime_ns), now)
        return True

    def touch(self, path: Path) -> None:
        """An event says ``path`` changed: probe it at the next round."""
        if path in self._items:
            self._dirty.add(path)

    def discard(self, path: Path) -> None:
        self._items.pop(path, None)
        self._dirty.discard(path)

    def next_deadline(self) -> float | None:
        """Monotonic time of the earliest scheduled check, ``None`` if nothing is tracked."""
        if self._dirty:
            return 0.0
        return min((c.next_check for c in self._items.values()), default=None)

    def due(self, now: float) -> list[Probe]:
        """Probes to run now: changed-by-event files and files whose check time came."""
        probes = []
        for path, cand in self._items.items():
            if path in self._dirty or cand.next_check <= now:
                confirm = cand.size >= 0 and (
                    self.marker is not None or now - cand.stable_since >= self.ready_after
                )
                probes.append(Probe(path, cand.size, cand.mtime_ns, confirm))
        self._dirty.clear()
        return probes

    def apply(self, results: Iterable[ProbeResult], now: float) -> TrackerOutcome:
        """Update the state from probe results taken at about ``now``."""
        out = TrackerOutcome()
        for res in results:
            cand = self._items.get(res.path)
            if cand is None:
                continue
            if res.size is None:
                self.discard(res.path)
                out.gone.append(res.path)
                continue
            if res.size != cand.size or res.mtime_ns != cand.mtime_ns:
                if cand.size < 0:
                    out.appeared.append(res.path)
                self._observe_change(cand, res, now)
            elif res.openable is not None or res.marker_present is not None or res.size == 0:
                decision = self._decide(res.path, cand, res, now)
                if decision is not None:
                    self.discard(res.path)
                    (out.rejected if decision.reject_reason else out.ready).append(decision)
                    continue
            else:
                cand.next_check = max(cand.stable_since + self.ready_after, now + MIN_RECHECK)
            if now - cand.first_seen >= self.defer_after and not self._waiting_for_empty(cand):
                self.discard(res.path)
                out.deferred.append(res.path)
        return out

    # --- rules ---------------------------------------------------------------

    def _observe_change(self, cand: _Candidate, res: ProbeResult, now: float) -> None:
        assert res.size is not None
        fresh = cand.size < 0
        cand.seen_changing = cand.seen_changing or not fresh
        cand.size, cand.mtime_ns = res.size, res.mtime_ns
        cand.stable_since = now
        if res.size == 0:
            cand.empty_since = cand.empty_since if cand.empty_since is not None else now
        else:
            cand.empty_since = None
        # A marker file may already be there: confirm at once.
        delay = 0.0 if (self.marker is not None and fresh) else self.ready_after
        cand.next_check = now + max(delay, 0.0)

    def _waiting_for_empty(self, cand: _Candidate) -> bool:
        return cand.size == 0 and self.marker is None

    def _source(self, path: Path, cand: _Candidate, reason: str | None = None) -> SourceFile:
        return SourceFile(
            path=path,
            watch_dir=cand.root.path,
            done_dir=cand.root.done_dir,
            error_dir=cand.root.error_dir,
            size=cand.size,
            mtime_ns=cand.mtime_ns,
            marker=Path(f"{path}{self.marker}") if self.marker else None,
            reject_reason=reason,
            seen_changing=cand.seen_changing,
        )

    def _decide(
        self, path: Path, cand: _Candidate, res: ProbeResult, now: float
    ) -> SourceFile | None:
        """An unchanged, confirmed file: ready, rejected, or check again later."""
        recheck = max(min(self.ready_after, 0.5), 0.2)
        if self.marker is not None and not res.marker_present:
            cand.next_check = now + recheck
            return None
        if cand.size == 0:
            if self.marker is not None:
                return self._source(path, cand, "the file is empty although its marker exists")
            since = cand.empty_since if cand.empty_since is not None else now
            if now - since >= self.empty_grace:
                return self._source(
                    path, cand, f"the file stayed empty (0 bytes) for {self.empty_grace:.0f} s"
                )
            cand.next_check = now + max(self.ready_after, 1.0)
            return None
        if self.max_file_size is not None and cand.size > self.max_file_size:
            return self._source(
                path,
                cand,
                f"the file is {cand.size} bytes, larger than max_file_size "
                f"({self.max_file_size}); raise max_file_size if it is a real result",
            )
        if res.openable:
            return self._source(path, cand)
        cand.next_check = now + recheck
        return None
