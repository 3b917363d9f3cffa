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
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

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
    "unique_path",
    "write_private_file",
]

OWNER_ONLY_FILE = 0o600
OWNER_ONLY_DIR = 0o700
#: Suffix of every temp file this package writes; sweeps remove leftovers.
TEMP_SUFFIX = ".pywats-tmp"

_IS_WINDOWS = sys.platform == "win32"


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
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync_dir:
        fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, *, sync_dir: bool = True) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), sync_dir=sync_dir)


def unique_path(folder: Path, name: str) -> Path:
    """A path in ``folder`` named ``name`` or, if taken, ``stem (2).ext``, ``stem (3).ext``...

    Collisions in Done/Error folders must never overwrite an earlier file.
    """
    candidate = folder / name
    if not candidate.exists():
        return candidate
    stem, dot, suffix = name.partition(".")
    for n in range(2, 1_000_000):
        candidate = folder / f"{stem} ({n}){dot}{suffix}"
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"{folder}: no free name for {name!r}")


def move_no_overwrite(source: Path, folder: Path, name: str | None = None) -> Path:
    """Move ``source`` into ``folder`` under a free name; returns where it went.

    Uses a hard link + unlink where possible so that a name taken between the
    check and the move is never overwritten; falls back to ``os.replace`` on
    file systems without hard links (some network shares).
    """
    ensure_private_dir(folder)
    for _ in range(100):
        target = unique_path(folder, name or source.name)
        try:
            os.link(source, target)
        except FileExistsError:
            continue
        except OSError:
            if target.exists():
                continue
            os.replace(source, target)
            return target
        source.unlink()
        return target
    raise FileExistsError(f"{folder}: could not find a free name for {source.name!r}")


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
