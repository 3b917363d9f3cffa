"""Intake journals in ``<queue>/intake/``: what was being converted, crash counts, kept files.

* **Batch journal** (``batch-*.jsonl``): before a batch of files is converted,
  one line naming them is written and fsync'd. Each file's converter thread
  appends a ``start`` and an ``end`` mark around the conversion (not fsync'd:
  they must survive a killed process, not a power cut). After the batch's
  reports are durably queued an outcomes line records each file's fate. The
  file is removed once the sources are moved. On start, a journal without the
  outcomes line means the worker died before the batch was queued: a file
  started but not ended was *in a converter* and gets a crash count; a file
  that ended may have reports in the queue already and is converted again
  with duplicates skipped; a file not started is simply taken again. A batch
  that was itself such a redo (``recovering``) blames every file that started,
  so a file whose reports kill the worker while being queued is caught too.
  With the outcomes line the reports are safe and only the post action is
  redone.
* **Crash counts** (``crashes.json``): files that were being converted when the
  worker died, so a file that kills the worker twice is quarantined.
* **Processed journal** (``processed.jsonl``): files whose report is queued but
  that stay in the watch folder (post action ``keep``, or a post action that
  failed and is retried), keyed by path, size, mtime and sha256 so they are not
  taken again. Append-only with periodic compaction.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pywats_client._fsutil import atomic_write_text, ensure_private_dir, fsync_dir, remove_file
from pywats_client.services._readiness import SourceFile

__all__ = [
    "BatchJournal",
    "CrashCounts",
    "JournalBatch",
    "ProcessedEntry",
    "ProcessedJournal",
    "source_from_dict",
    "source_to_dict",
]

log = logging.getLogger(__name__)

_counter = itertools.count()


def source_to_dict(src: SourceFile) -> dict[str, Any]:
    return {
        "path": str(src.path),
        "watch_dir": str(src.watch_dir),
        "done_dir": str(src.done_dir),
        "error_dir": str(src.error_dir),
        "size": src.size,
        "mtime_ns": src.mtime_ns,
        "marker": str(src.marker) if src.marker else None,
    }


def source_from_dict(data: dict[str, Any]) -> SourceFile:
    return SourceFile(
        path=Path(data["path"]),
        watch_dir=Path(data["watch_dir"]),
        done_dir=Path(data["done_dir"]),
        error_dir=Path(data["error_dir"]),
        size=int(data["size"]),
        mtime_ns=int(data["mtime_ns"]),
        marker=Path(data["marker"]) if data.get("marker") else None,
    )


def _line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")


def _append_line(path: Path, record: dict[str, Any], *, create: bool = False) -> None:
    """Append one JSON line and fsync the file (owner-only when created)."""
    flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0)
    if create:
        flags |= os.O_CREAT
    fd = os.open(path, flags, 0o600)
    try:
        os.write(fd, _line(record))
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of ``path``; torn or garbled lines are skipped."""
    return _read_lines_checked(path)[0]


def _read_lines_checked(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """:func:`_read_lines` and whether the file was clean (no torn or garbled line)."""
    records = []
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], True
    clean = not raw or raw.endswith(b"\n")
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            clean = False
            continue
        if isinstance(record, dict):
            records.append(record)
    return records, clean


@dataclass
class JournalBatch:
    """One batch found in the journal at start."""

    journal: Path
    files: list[SourceFile]
    #: path -> "queued" | "error", present once the reports were durably queued.
    outcomes: dict[str, str] | None
    aborted: bool
    #: The batch redid files after a crash (see the module docstring).
    recovering: bool = False
    #: Paths whose conversion began / returned (``start``/``end`` marks).
    started: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)


class BatchJournal:
    """Write-ahead record of the batch being converted (one fsync before converting)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # Converter threads and the loop append to one journal: one writer at a time
        # (O_APPEND is not atomic between threads on Windows).
        self._lock = threading.Lock()
        #: The open journal of each batch being converted, for its marks: opened
        #: once, not per mark (every open and close makes a converter thread wait
        #: for the interpreter lock again). Closed before the journal is removed.
        self._mark_fds: dict[Path, int] = {}
        #: Aborted batches (a stop): a late mark must not open them again.
        self._aborted: set[Path] = set()

    def begin(self, files: Sequence[SourceFile], *, recovering: bool = False) -> Path:
        """Record ``files`` before converting them (fsync'd); returns the journal."""
        ensure_private_dir(self.folder)
        name = f"batch-{time.time_ns():020d}-{os.getpid()}-{next(_counter)}.jsonl"
        path = self.folder / name
        record: dict[str, Any] = {"files": [source_to_dict(f) for f in files]}
        if recovering:
            record["recovering"] = True
        try:
            _append_line(path, record, create=True)
            fsync_dir(self.folder)
        except OSError:  # e.g. disk full: leave no half-written batch behind
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        return path

    def converted(self, journal: Path, outcomes: dict[Path, str]) -> None:
        """The batch's reports are durable in the queue; ``outcomes`` per source path."""
        with self._lock:
            self._close_marks(journal)
            _append_line(journal, {"outcomes": {str(p): v for p, v in outcomes.items()}})

    def mark(self, journal: Path, path: Path, event: Literal["start", "end"]) -> None:
        """``path`` enters (``start``) or leaves (``end``) its converter; never raises.

        No fsync: a mark only has to outlive a killed process (the page cache
        does). A journal already ended (a late mark of an abandoned converter)
        or a full disk loses the mark, which at worst blames no file for a crash.
        """
        with self._lock, contextlib.suppress(OSError):
            fd = self._mark_fds.get(journal)
            if fd is None:
                if journal in self._aborted:
                    return
                flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0)
                fd = self._mark_fds[journal] = os.open(journal, flags)
            os.write(fd, _line({event: str(path)}))

    def abort(self, journal: Path) -> None:
        """The batch was interrupted by a graceful stop: no file is to blame."""
        with self._lock, contextlib.suppress(OSError):
            self._close_marks(journal)
            self._aborted.add(journal)
            _append_line(journal, {"aborted": True})

    def end(self, journal: Path) -> None:
        """The batch is finished (sources moved); forgetting it needs no fsync.

        Never raises: a journal that cannot be removed (on Windows, while a
        virus scanner or backup agent holds it open) is re-read at the next
        start, where its sources are found already handled. The lock keeps an
        abandoned converter thread's ``mark`` from holding it open meanwhile.
        """
        with self._lock:
            self._close_marks(journal)
            self._aborted.discard(journal)
            try:
                remove_file(journal)
            except OSError as exc:
                log.warning("could not remove the finished batch journal %s: %s", journal, exc)

    def _close_marks(self, journal: Path) -> None:
        fd = self._mark_fds.pop(journal, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def pending(self) -> list[JournalBatch]:
        """Batches left behind by a previous run, oldest first."""
        try:
            names = sorted(p for p in self.folder.glob("batch-*.jsonl"))
        except OSError:
            return []
        batches = []
        for path in names:
            records = _read_lines(path)
            if not records or "files" not in records[0]:
                batches.append(JournalBatch(path, [], None, aborted=True))
                continue
            files = []
            for item in records[0]["files"]:
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    files.append(source_from_dict(item))
            recovering = records[0].get("recovering") is True
            batch = JournalBatch(path, files, None, aborted=False, recovering=recovering)
            for record in records[1:]:
                if isinstance(record.get("outcomes"), dict):
                    batch.outcomes = {str(k): str(v) for k, v in record["outcomes"].items()}
                if record.get("aborted"):
                    batch.aborted = True
                if isinstance(record.get("start"), str):
                    batch.started.add(record["start"])
                if isinstance(record.get("end"), str):
                    batch.ended.add(record["end"])
            batches.append(batch)
        return batches


class CrashCounts:
    """Which files were being converted when the worker died, and how often.

    Each crash is recorded by the name of the batch journal that blamed the
    file, so handling the same journal twice (a crash during recovery) does
    not count twice.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / "crashes.json"
        self._entries: dict[str, dict[str, Any]] = {}
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return
        entries = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            return
        for key, value in entries.items():
            with contextlib.suppress(KeyError, TypeError, ValueError):
                source_from_dict(value["source"])
                self._entries[str(key)] = {
                    "source": value["source"],
                    "journals": [str(j) for j in value["journals"]],
                }

    def _save(self) -> None:
        """Persist the counts; if that fails (disk full) they live on in memory.

        A worker that cannot record a crash count must still start and run: the
        count is written with the next change once there is room again.
        """
        try:
            ensure_private_dir(self.path.parent)
            atomic_write_text(self.path, json.dumps({"entries": self._entries}, indent=1))
        except OSError as exc:
            log.warning("cannot save crash counts to %s (%s); kept in memory", self.path, exc)

    def count(self, src: SourceFile) -> int:
        entry = self._entries.get(str(src.path))
        if entry is None:
            return 0
        known = source_from_dict(entry["source"])
        if (known.size, known.mtime_ns) != (src.size, src.mtime_ns):
            return 0
        return len(entry["journals"])

    def bump(self, files: Iterable[SourceFile], journal: str) -> None:
        """Blame ``files`` for the crash recorded in ``journal`` (idempotent, durable)."""
        changed = False
        for src in files:
            journals = self._entries.get(str(src.path), {}).get("journals", [])
            if not self.count(src):
                journals = []
            if journal in journals:
                continue
            self._entries[str(src.path)] = {
                "source": source_to_dict(src),
                "journals": [*journals, journal],
            }
            changed = True
        if changed:
            self._save()

    def suspects(self) -> list[tuple[SourceFile, int]]:
        return [(source_from_dict(e["source"]), len(e["journals"])) for e in self._entries.values()]

    def forget(self, paths: Iterable[Path]) -> None:
        changed = False
        for path in paths:
            changed = self._entries.pop(str(path), None) is not None or changed
        if changed:
            self._save()

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class ProcessedEntry:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    #: Post action still to do (it failed earlier), or None: keep the file as it is.
    pending_action: str | None = None


class ProcessedJournal:
    """Files whose reports are queued but which stay in the watch folder."""

    def __init__(self, folder: Path, *, compact_min: int = 1000) -> None:
        self.path = folder / "processed.jsonl"
        self._entries: dict[str, ProcessedEntry] = {}
        self._pending: set[str] = set()
        self._lines = 0
        self._compact_min = compact_min
        records, clean = _read_lines_checked(self.path)
        for record in records:
            self._lines += 1
            path = record.get("path")
            if not isinstance(path, str):
                continue
            if record.get("removed"):
                self._drop(path)
                continue
            with contextlib.suppress(KeyError, TypeError, ValueError):
                self._set(
                    ProcessedEntry(
                        path=path,
                        size=int(record["size"]),
                        mtime_ns=int(record["mtime_ns"]),
                        sha256=str(record["sha256"]),
                        pending_action=record.get("pending_action"),
                    )
                )
        #: The file ends in a torn line: the next append starts a new line first,
        #: or it would be glued onto the torn one and lost with it.
        self._torn = not clean

    def __len__(self) -> int:
        return len(self._entries)

    def matches(self, path: Path, size: int, mtime_ns: int) -> bool:
        entry = self._entries.get(str(path))
        return entry is not None and entry.size == size and entry.mtime_ns == mtime_ns

    def get(self, path: Path) -> ProcessedEntry | None:
        return self._entries.get(str(path))

    def pending_actions(self) -> list[ProcessedEntry]:
        return [self._entries[k] for k in sorted(self._pending)]

    def has_pending_actions(self) -> bool:
        return bool(self._pending)

    def _set(self, entry: ProcessedEntry) -> None:
        self._entries[entry.path] = entry
        if entry.pending_action:
            self._pending.add(entry.path)
        else:
            self._pending.discard(entry.path)

    def _drop(self, key: str) -> None:
        self._entries.pop(key, None)
        self._pending.discard(key)

    def add(self, entries: Sequence[ProcessedEntry]) -> None:
        """Record ``entries`` durably (one fsync)."""
        if not entries:
            return
        ensure_private_dir(self.path.parent)
        payload = "".join(json.dumps(asdict(e), separators=(",", ":")) + "\n" for e in entries)
        self._append(payload)
        for entry in entries:
            self._set(entry)
        self._lines += len(entries)
        self._maybe_compact()

    def remove(self, paths: Iterable[Path]) -> None:
        keys = [str(p) for p in paths if str(p) in self._entries]
        if not keys:
            return
        payload = "".join(json.dumps({"path": k, "removed": True}) + "\n" for k in keys)
        self._append(payload)
        for key in keys:
            self._drop(key)
        self._lines += len(keys)
        self._maybe_compact()

    def _append(self, payload: str) -> None:
        if self._torn:
            payload = "\n" + payload
        created = not self.path.exists()
        fd = os.open(
            self.path,
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0),
            0o600,
        )
        try:
            os.write(fd, payload.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        self._torn = False
        if created:  # the new file's name must survive a power cut too
            fsync_dir(self.path.parent)

    def _maybe_compact(self) -> None:
        if self._lines > max(self._compact_min, 2 * len(self._entries)):
            try:
                self.compact()
            except OSError as exc:  # e.g. disk full: the longer file is still right
                log.warning("cannot compact %s (%s); trying again later", self.path, exc)

    def compact(self, *, drop_missing: bool = False) -> None:
        """Rewrite the journal with only live entries (atomically).

        ``drop_missing`` also forgets files that are gone or changed since.
        """
        if drop_missing:
            for key, entry in list(self._entries.items()):
                try:
                    st = Path(key).stat()
                except OSError:
                    self._drop(key)
                    continue
                if st.st_size != entry.size or st.st_mtime_ns != entry.mtime_ns:
                    self._drop(key)
        ensure_private_dir(self.path.parent)
        text = "".join(
            json.dumps(asdict(e), separators=(",", ":")) + "\n" for e in self._entries.values()
        )
        atomic_write_text(self.path, text)
        self._lines = len(self._entries)
        self._torn = False
