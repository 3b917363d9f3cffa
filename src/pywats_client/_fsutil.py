"""Crash-safe file operations shared by the config, the queue and the lifecycle.

The rule everywhere: write a temp file in the destination's folder, flush and
fsync it, ``os.replace`` it into place, then fsync the folder so the rename
itself survives a power cut. Files are created owner-only because config and
queue files may hold tokens and test data.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

__all__ = [
    "OWNER_ONLY_DIR",
    "OWNER_ONLY_FILE",
    "TEMP_SUFFIX",
    "atomic_write_bytes",
    "atomic_write_text",
    "ensure_private_dir",
    "fsync_dir",
    "fsync_dirs",
    "is_disk_full",
    "iter_temp_files",
    "move_no_overwrite",
    "remove_file",
    "replace_file",
    "unique_path",
    "write_private_file",
]

OWNER_ONLY_FILE = 0o600
OWNER_ONLY_DIR = 0o700
#: Suffix of every temp file this package writes; sweeps remove leftovers.
TEMP_SUFFIX = ".pywats-tmp"

_IS_WINDOWS = sys.platform == "win32"
#: Windows refuses to rename or delete a file while another program (a virus
#: scanner, a backup or indexing agent, ``queue list``) has it open; such holds
#: are brief, so those calls are retried: 5 ms doubling, about 0.6 s in all.
_SHARING_RETRIES = 8
_SHARING_FIRST_DELAY = 0.005

T = TypeVar("T")
#: What file systems that cannot fsync a folder (some shares, FUSE) answer.
_NO_DIR_FSYNC = {errno.EINVAL, errno.ENOTSUP, getattr(errno, "EOPNOTSUPP", errno.ENOTSUP)}


def _retry_sharing(operation: Callable[[], T]) -> T:
    """``operation()``; on Windows, again after a pause while it meets a sharing violation."""
    if not _IS_WINDOWS:
        return operation()
    delay = _SHARING_FIRST_DELAY
    for _ in range(_SHARING_RETRIES - 1):
        try:
            return operation()
        except PermissionError:
            time.sleep(delay)
            delay *= 2
    return operation()


def replace_file(source: Path, target: Path) -> None:
    """``os.replace``, waiting out another program's brief hold on either file (Windows)."""
    _retry_sharing(lambda: os.replace(source, target))


def remove_file(path: Path) -> None:
    """Delete ``path`` if it is there.

    On Windows a read-only file cannot be deleted (its attribute is cleared
    first) and a file another program holds open is retried, as in
    :func:`replace_file`.
    """

    def unlink() -> None:
        try:
            path.unlink()
        except PermissionError:
            if not _IS_WINDOWS:
                raise
            with contextlib.suppress(OSError):
                path.chmod(stat.S_IWRITE)  # clears the read-only attribute
            path.unlink()

    with contextlib.suppress(FileNotFoundError):
        _retry_sharing(unlink)


def fsync_dir(path: Path) -> None:
    """Make renames and creations inside ``path`` durable (no-op on Windows).

    Windows has no directory handles to fsync; NTFS journals metadata itself.
    """
    if _IS_WINDOWS:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dirs(paths: Iterable[Path]) -> None:
    """fsync each distinct folder once (batched directory sync)."""
    for path in dict.fromkeys(paths):
        fsync_dir(path)


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if missing; new folders are owner-only."""
    path.mkdir(parents=True, exist_ok=True, mode=OWNER_ONLY_DIR)
    return path


def _write_fd(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_private_file(path: Path, data: bytes) -> None:
    """Write and fsync ``data`` to a new or truncated owner-only file (no rename)."""
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), OWNER_ONLY_FILE
    )
    _write_fd(fd, data)


def atomic_write_bytes(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never half.

    With ``sync_dir=False`` the caller promises to ``fsync_dir(path.parent)``
    before it relies on the file being there (batched directory sync).
    On any error the temp file is removed and nothing partial is visible.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        if not _IS_WINDOWS:
            os.fchmod(fd, OWNER_ONLY_FILE)
        _write_fd(fd, data)
        replace_file(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync_dir:
        fsync_dir(path.parent)


def atomic_write_text(
    path: Path, text: str, *, sync_dir: bool = True, for_people: bool = False
) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text.

    ``for_people``: a note an operator opens in an editor gets Windows line
    endings on Windows (Notepad before Windows 10 1809, still common on test
    stations, shows LF-only text as one line).
    """
    if for_people and _IS_WINDOWS:
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    # backslashreplace: a file name that is not valid UTF-8 shows as \udcff, not a crash
    atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"), sync_dir=sync_dir)


def unique_path(folder: Path, name: str) -> Path:
    """A path in ``folder`` named ``name`` or, if taken, ``stem (2).ext``, ``stem (3).ext``...

    Collisions in Done/Error folders must never overwrite an earlier file. Testers
    often reuse one name, so the suffixes are searched by doubling then bisecting:
    a few stats instead of one per earlier file. Returns the next number after a
    contiguous run; with gaps (files removed by hand) it may return a gap, which is
    just as free.
    """
    candidate = folder / name
    if not candidate.exists():
        return candidate
    stem, dot, suffix = name.partition(".")

    def numbered(n: int) -> Path:
        return folder / f"{stem} ({n}){dot}{suffix}"

    taken, free = 1, 2  # the bare name counts as number 1
    while numbered(free).exists():
        taken, free = free, free * 2
        if free >= 1_000_000:
            raise FileExistsError(f"{folder}: no free name for {name!r}")
    while free - taken > 1:
        middle = (taken + free) // 2
        if numbered(middle).exists():
            taken = middle
        else:
            free = middle
    return numbered(free)


def move_no_overwrite(source: Path, folder: Path, name: str | None = None) -> Path:
    """Move ``source`` into ``folder`` under a free name; returns where it went.

    A name taken between the check and the move is never overwritten: POSIX
    uses a hard link + unlink, Windows its rename, which refuses an existing
    target. (A hard link there would succeed even while another program holds
    the source open, and the unlink then fail.) Falls back to ``os.replace`` on
    file systems without hard links (some network shares), and to a copy when
    ``folder`` is on another file system. If the source cannot be removed (held
    open by another program), the new name is removed again and the error
    raised: a retry must not leave a second copy behind.
    """
    ensure_private_dir(folder)
    name = name or source.name
    try:
        target, linked = _place(source, folder, name)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        return _copy_across(source, folder, name)
    if linked:
        _drop_source(source, target)
    return target


def _place(source: Path, folder: Path, name: str) -> tuple[Path, bool]:
    """Give ``source`` a free name in ``folder``: (that path, whether it is a hard link)."""
    for _ in range(100):
        target = unique_path(folder, name)
        try:
            if _IS_WINDOWS:
                _retry_sharing(lambda: source.rename(target))  # noqa: B023 (called at once)
                return target, False
            os.link(source, target)
        except FileExistsError:
            continue
        except OSError as exc:
            if _IS_WINDOWS or exc.errno == errno.EXDEV:
                raise
            if target.exists():
                continue
            os.replace(source, target)
            return target, False
        return target, True
    raise FileExistsError(f"{folder}: could not find a free name for {name!r}")


def _drop_source(source: Path, target: Path) -> None:
    """Remove ``source`` now that ``target`` holds its content, or undo ``target``."""
    try:
        remove_file(source)
    except BaseException:
        with contextlib.suppress(OSError):
            remove_file(target)
        raise


def _copy_across(source: Path, folder: Path, name: str) -> Path:
    """Move between file systems: durable copy under a free name first, then unlink."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=TEMP_SUFFIX, dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(OSError):  # keep the tester's mtime where the share allows
            shutil.copystat(source, tmp)
        target, _ = _place(tmp, folder, name)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    try:
        fsync_dir(folder)
    except OSError as exc:
        # Shares that cannot fsync a folder (EINVAL) keep the copy; anything else undoes
        # it, so that a retry does not leave a second copy behind.
        if exc.errno not in _NO_DIR_FSYNC:
            with contextlib.suppress(OSError):
                remove_file(target)
            raise
    _drop_source(source, target)
    return target


def is_disk_full(error: BaseException) -> bool:
    """True for ENOSPC/EDQUOT (disk or quota full)."""
    return isinstance(error, OSError) and error.errno in (
        errno.ENOSPC,
        getattr(errno, "EDQUOT", -1),
    )


def iter_temp_files(folder: Path) -> Iterator[Path]:
    """Temp files left behind in ``folder`` by a crash mid-write."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(TEMP_SUFFIX):
                    yield Path(entry.path)
    except FileNotFoundError:
        return
