"""Low-level durable file steps of the queue (temp file, fsync, rename, sweep).

Temp files live in ``<queue>/tmp`` (same file system as the state folders, so
``os.replace`` is atomic) and carry the package's temp suffix, so a sweep at
start removes whatever a crash left behind. ``_write_all`` is the single place
bytes reach the disk: tests replace it to simulate a full disk everywhere,
where a real small tmpfs cannot be mounted.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from pywats_client._fsutil import _IS_WINDOWS, OWNER_ONLY_FILE, TEMP_SUFFIX, remove_file

__all__ = ["remove_quietly", "sweep_temp_files", "write_temp"]

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_REUSE_FLAGS = os.O_WRONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_temp(tmp_dir: Path, final_name: str, data: bytes, spare: Path | None = None) -> Path:
    """Write ``data`` to an owner-only temp file and fsync it; returns its path.

    ``spare`` is a file of a sent report whose removal from ``pending/`` is
    already durable: it is overwritten instead of creating a new file. Creating
    and deleting a file per report is the costliest step of queueing on some
    file systems (ext4 without a journal looks at every inode freed in the last
    seconds before it hands out a new one). On any error the temp file is
    removed before the error propagates.
    """
    if spare is not None:
        try:
            fd = os.open(spare, _REUSE_FLAGS)
        except OSError:  # swept or otherwise gone: a new file does as well
            remove_quietly(spare)
        else:
            if _reusable(fd):
                return _fill(spare, fd, data, truncate=True)
            os.close(fd)
            remove_quietly(spare)
    path = tmp_dir / f"{final_name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    return _fill(path, os.open(path, _OPEN_FLAGS, OWNER_ONLY_FILE), data, truncate=False)


def _reusable(fd: int) -> bool:
    """Only a file as the queue writes them: one name, and on POSIX ours and owner-only.

    A queue file an operator copied in (other permissions) or linked elsewhere
    must not pass its permissions or its other name on to a new report.
    """
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode) or found.st_nlink != 1:
        return False
    return _IS_WINDOWS or (found.st_uid == os.geteuid() and not found.st_mode & 0o077)


def _fill(path: Path, fd: int, data: bytes, *, truncate: bool) -> Path:
    try:
        try:
            _write_all(fd, data)
            if truncate:  # a longer earlier report leaves no tail behind
                os.ftruncate(fd, len(data))
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        remove_quietly(path)
        raise
    return path


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        remove_file(path)


def sweep_temp_files(folder: Path) -> int:
    """Remove temp files a crash left in ``folder``; returns how many."""
    try:
        with os.scandir(folder) as entries:  # lazily: the folder may hold 100,000 reports
            leftovers = [
                Path(entry.path)
                for entry in entries
                if entry.name.endswith(TEMP_SUFFIX) and entry.is_file(follow_symlinks=False)
            ]
    except FileNotFoundError:
        return 0
    for path in leftovers:
        remove_quietly(path)
    return len(leftovers)
