"""What happens to a source file after its report is safe in the queue (or cannot be made).

Every function here runs only *after* the report is durable: a crash at any
point leaves the source where a restart finds it again (and the deterministic
report id makes the second conversion harmless). Moves never overwrite (a
taken name gets a `` (2)`` suffix); folder fsyncs are batched by the caller
through :func:`pywats_client._fsutil.fsync_dirs`.

The zip archive is rewritten crash-safely: the current archive is copied to a
temp file, the new entries appended, the copy fsync'd and ``os.replace``'d over
the original, so a reader (or a crash) sees the old or the new archive, never
a torn one. Archives roll over to ``YYYY-MM-DD-2.zip``... at ``zip_limit`` bytes
to bound the copy cost.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import traceback
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pywats_client._fsutil import (
    TEMP_SUFFIX,
    atomic_write_text,
    ensure_private_dir,
    iter_temp_files,
    move_no_overwrite,
    remove_file,
    replace_file,
    unique_path,
)
from pywats_client.errors import ConversionError
from pywats_client.services._readiness import SourceFile

__all__ = [
    "DEFAULT_ZIP_LIMIT",
    "REASON_SUFFIX",
    "ErrorReport",
    "archive_path_for",
    "count_parked",
    "count_parked_in",
    "delete_source",
    "move_to_done",
    "move_to_error",
    "relative_folder",
    "remove_marker",
    "sweep_temps",
    "zip_sources",
]

#: An archive at or above this size is closed; the next one gets a ``-N`` suffix.
DEFAULT_ZIP_LIMIT = 32 * 1024 * 1024
#: Why a source was parked: ``<file>.error.txt`` beside it in the Error folder.
REASON_SUFFIX = ".error.txt"
#: How deep :func:`count_parked` follows sub-folders of an Error folder.
_MAX_DEPTH = 32


def relative_folder(src: SourceFile, base: Path) -> Path:
    """``base`` plus the source's sub-folder under its watch folder (recursive watches)."""
    try:
        rel = src.path.parent.relative_to(src.watch_dir)
    except ValueError:
        return base
    return base / rel


def remove_marker(src: SourceFile) -> None:
    """The marker file goes with its source (moved, deleted or archived)."""
    if src.marker is not None:
        remove_file(src.marker)


def move_to_done(src: SourceFile) -> Path:
    """Move the source into its Done folder (sub-folders kept); returns the new path."""
    target = move_no_overwrite(src.path, relative_folder(src, src.done_dir))
    if src.done_dir == src.error_dir:
        # One folder for both: a reason beside the new name is that of an earlier,
        # failed file of this name (fixed and dropped again, now converted), and
        # would make this one count as parked. The move is done: a reason that
        # cannot be removed only stays counted.
        with contextlib.suppress(OSError):
            remove_file(_reason_path(target))
    remove_marker(src)
    return target


def delete_source(src: SourceFile) -> None:
    remove_file(src.path)
    remove_marker(src)


@dataclass(frozen=True)
class ErrorReport:
    """Why a source went to the error folder (written next to it as ``<file>.error.txt``).

    ``converter`` defaults to the one a ``ConversionError`` names. A traceback
    is written only for an unexpected exception (a converter that crashed, the
    ``__cause__`` of its ``ConversionError``): for an expected refusal ("no
    converter accepts this file", ``raise self.error(...)``) the reason says it
    all, and service internals would only bury it.
    """

    reason: str
    converter: str | None = None
    exception: BaseException | None = None
    detail: str | None = None

    def render(self, src: SourceFile, now: datetime | None = None) -> str:
        when = (now or datetime.now().astimezone()).isoformat(timespec="seconds")
        converter = self.converter or _converter_of(self.exception)
        lines = [
            f"file:      {src.path}",
            f"time:      {when}",
            f"converter: {converter or '-'}",
            f"reason:    {self.reason}",
        ]
        crash = _unexpected(self.exception)
        if crash is not None:
            lines.append(f"exception: {type(crash).__name__}: {crash}")
            tb = "".join(traceback.format_exception(type(crash), crash, crash.__traceback__))
            lines += ["", "traceback:", tb.rstrip()]
        if self.detail:
            lines += ["", self.detail.rstrip()]
        lines += [
            "",
            "What to do: fix the file or the converter, then move the file back into the "
            "watch folder to process it again. If the file looks complete now, the tester "
            "may still have been writing it when it was read: raise ready_after (or use "
            "ready_marker), then move it back.",
        ]
        return "\n".join(lines) + "\n"


def _converter_of(exc: BaseException | None) -> str | None:
    name = exc.converter if isinstance(exc, ConversionError) else None
    return name or None


def _unexpected(exc: BaseException | None) -> BaseException | None:
    """The exception worth a traceback: not a ConversionError, or what one wraps."""
    if isinstance(exc, ConversionError):
        return exc.__cause__
    return exc


def _reason_path(target: Path) -> Path:
    return target.with_name(target.name + REASON_SUFFIX)


def count_parked(error_dir: Path) -> int | None:
    """Sources parked in ``error_dir`` and its sub-folders: results not in WATS.

    A parked source is a file with its reason beside it (the reason is written
    before the move, so every source the intake parks has one). That leaves out
    a reason whose file was dealt with, and whatever else shares the folder
    (a Done folder configured as the same folder, desktop.ini, an editor's lock
    file). Sub-folders count because a recursive watch parks a file under its
    own sub-folder's path; they are followed at most ``_MAX_DEPTH`` deep (a
    folder link looping back ends there). 0 if the folder does not exist yet,
    None if its parent does not either (a share that is gone: not known);
    ``OSError`` (naming the folder) if one cannot be read.
    """
    parked = 0
    folders = [(error_dir, 0)]
    while folders:
        folder, depth = folders.pop()
        try:
            with os.scandir(folder) as entries:
                files: set[str] = set()
                for entry in entries:
                    if entry.name.startswith("."):
                        continue  # temp files, hidden folders
                    if entry.is_dir(follow_symlinks=False):
                        if depth < _MAX_DEPTH:
                            folders.append((Path(entry.path), depth + 1))
                    else:
                        files.add(entry.name)
        except FileNotFoundError:
            if folder == error_dir:
                return 0 if error_dir.parent.is_dir() else None
            continue  # removed while counting
        parked += sum(1 for name in files if name + REASON_SUFFIX in files)
    return parked


def count_parked_in(error_dirs: Iterable[Path]) -> tuple[dict[Path, int] | None, str | None]:
    """:func:`count_parked` of each distinct folder, or None if one is not known; and
    the problem that stopped the count, if it is one someone must fix."""
    counts: dict[Path, int] = {}
    for folder in dict.fromkeys(error_dirs):
        try:
            count = count_parked(folder)
        except ValueError as exc:  # a NUL byte or a lone surrogate in the path
            return None, (
                f"the Error folder {str(folder)!r} is not a usable path ({exc}); fix error_path"
            )
        except OSError as exc:
            return None, (
                f"cannot count the files parked in {exc.filename or folder} "
                f"({exc.strerror or exc}); make it readable for the service account"
            )
        if count is None:  # not there, nor its parent (a share that is gone)
            return None, None
        counts[folder] = count
    return counts, None


def move_to_error(src: SourceFile, report: ErrorReport) -> Path:
    """Move the source into its Error folder with a reason file beside it.

    The reason is written first, under the name the source is about to get: a
    crash in between leaves the source in the watch folder (handled again at the
    next start, rewriting the reason), never a file in Error without its reason.
    """
    folder = ensure_private_dir(relative_folder(src, src.error_dir))
    planned = unique_path(folder, src.path.name)
    atomic_write_text(_reason_path(planned), report.render(src), sync_dir=False, for_people=True)
    try:
        target = move_no_overwrite(src.path, folder, planned.name)
    except BaseException:
        with contextlib.suppress(OSError):
            remove_file(_reason_path(planned))
        raise
    if target != planned:  # the name was taken meanwhile: the reason follows the file
        replace_file(_reason_path(planned), _reason_path(target))
    remove_marker(src)
    return target


# --- zip ---------------------------------------------------------------------------


def archive_path_for(done_dir: Path, day: str, limit: int) -> Path:
    """The archive of ``day`` that still has room: ``day.zip``, ``day-2.zip``..."""
    n = 1
    while True:
        name = f"{day}.zip" if n == 1 else f"{day}-{n}.zip"
        path = done_dir / name
        try:
            if path.stat().st_size < limit:
                return path
        except FileNotFoundError:
            return path
        n += 1


def _file_crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc


def _free_name(existing: dict[str, zipfile.ZipInfo], name: str) -> str:
    stem, dot, suffix = name.rpartition(".") if "." in name else (name, "", "")
    n = 2
    candidate = name
    while candidate in existing:
        candidate = f"{stem} ({n}){dot}{suffix}" if dot else f"{name} ({n})"
        n += 1
    return candidate


def zip_sources(
    done_dir: Path,
    sources: Sequence[SourceFile],
    *,
    limit: int = DEFAULT_ZIP_LIMIT,
    day: str | None = None,
) -> Path:
    """Add ``sources`` to today's archive in ``done_dir``, crash-safely; returns the archive.

    A source already in the archive with the same name, size and CRC (a
    post action redone after a crash) is not added twice. The caller fsyncs
    ``done_dir`` and only then deletes the sources, so a power cut never leaves
    the sources gone and the archive's rename lost.
    """
    ensure_private_dir(done_dir)
    day = day or datetime.now().astimezone().strftime("%Y-%m-%d")
    archive = archive_path_for(done_dir, day, limit)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{archive.name}.", suffix=TEMP_SUFFIX, dir=done_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        appending = archive.exists()
        if appending:
            shutil.copyfile(archive, tmp)
        mode: Literal["a", "w"] = "a" if appending else "w"
        with zipfile.ZipFile(tmp, mode, compression=zipfile.ZIP_DEFLATED) as zf:
            existing = {info.filename: info for info in zf.infolist()}
            for src in sources:
                arcname = relative_folder(src, Path()).joinpath(src.path.name).as_posix()
                info = existing.get(arcname)
                if info is not None:
                    st = src.path.stat()
                    if info.file_size == st.st_size and _file_crc(src.path) == info.CRC:
                        continue
                    arcname = _free_name(existing, arcname)
                zf.write(src.path, arcname)
                existing[arcname] = zf.getinfo(arcname)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        replace_file(tmp, archive)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return archive


def sweep_temps(folders: Iterable[Path]) -> int:
    """Remove the temp files a crash left in Done and Error folders; returns how many.

    Three kinds are written there, each renamed into place when complete: a
    zip archive's new copy (Done), a reason file (Error), and the copy of a
    source moved to another volume (either; ``move_no_overwrite``). A worker
    killed before the rename leaves a hidden ``...`` + ``TEMP_SUFFIX`` file
    behind; the source itself is still in the watch folder and is handled again
    after the restart.
    Call it only at start, before this worker writes anything there.
    """
    removed = 0
    for folder in dict.fromkeys(folders):
        for tmp in iter_temp_files(folder):
            if tmp.name.startswith("."):
                with contextlib.suppress(OSError):  # held by a virus scanner: next start
                    remove_file(tmp)
                    removed += 1
    return removed
