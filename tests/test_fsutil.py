"""Crash-safe file helpers: nothing partial is ever visible, nothing is overwritten."""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

import pytest

from pywats_client import _fsutil
from pywats_client._fsutil import (
    TEMP_SUFFIX,
    atomic_write_bytes,
    atomic_write_text,
    is_disk_full,
    iter_temp_files,
    move_no_overwrite,
    unique_path,
)


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert list(iter_temp_files(tmp_path)) == []


@pytest.mark.parametrize("windows", [False, True])
def test_notes_for_people_get_the_platforms_line_endings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, windows: bool
) -> None:
    monkeypatch.setattr(_fsutil, "_IS_WINDOWS", windows)
    note, data = tmp_path / "x.error.txt", tmp_path / "data.json"
    atomic_write_text(note, "why\nwhat to do\r\n", for_people=True)
    atomic_write_text(data, "a\nb\n")
    assert note.read_bytes() == (b"why\r\nwhat to do\r\n" if windows else b"why\nwhat to do\r\n")
    assert data.read_bytes() == b"a\nb\n"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_atomic_write_is_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    atomic_write_bytes(target, b"x")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_failed_write_leaves_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f"
    atomic_write_bytes(target, b"old")

    def disk_full(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_fsutil, "_write_fd", disk_full)
    with pytest.raises(OSError) as info:
        atomic_write_bytes(target, b"new")
    assert is_disk_full(info.value)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_unique_path_suffixes(tmp_path: Path) -> None:
    assert unique_path(tmp_path, "a.txt") == tmp_path / "a.txt"
    (tmp_path / "a.txt").touch()
    assert unique_path(tmp_path, "a.txt") == tmp_path / "a (2).txt"
    (tmp_path / "a (2).txt").touch()
    assert unique_path(tmp_path, "a.txt") == tmp_path / "a (3).txt"
    (tmp_path / "log.tar.gz").touch()
    assert unique_path(tmp_path, "log.tar.gz") == tmp_path / "log (2).tar.gz"


def test_move_never_overwrites(tmp_path: Path) -> None:
    done = tmp_path / "Done"
    for n in range(3):
        source = tmp_path / "result.txt"
        source.write_text(str(n))
        moved = move_no_overwrite(source, done)
        assert not source.exists()
        assert moved.read_text() == str(n)
    assert sorted(p.read_text() for p in done.iterdir()) == ["0", "1", "2"]


def test_move_falls_back_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    source = tmp_path / "r.txt"
    source.write_text("x")
    moved = move_no_overwrite(source, tmp_path / "Done")
    assert moved.read_text() == "x"
    assert not source.exists()


def test_iter_temp_files_finds_leftovers(tmp_path: Path) -> None:
    (tmp_path / f".x{TEMP_SUFFIX}").touch()
    (tmp_path / "keep.json").touch()
    assert [p.name for p in iter_temp_files(tmp_path)] == [f".x{TEMP_SUFFIX}"]
    assert list(iter_temp_files(tmp_path / "missing")) == []


# --- found in review -------------------------------------------------------------------------


def test_move_leaves_no_copy_behind_when_the_source_cannot_be_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A source another program holds open (Windows) or in a folder we may not write
    # to: the hard link into Done succeeds but the unlink fails. The move must fail
    # whole; a copy left in Done would be joined by another one at every retry.
    source = tmp_path / "r.txt"
    source.write_text("x")
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self == source:
            raise PermissionError(errno.EACCES, "in use by another program")
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    done = tmp_path / "Done"
    for _ in range(2):  # the post action is retried later
        with pytest.raises(PermissionError):
            move_no_overwrite(source, done)
    assert list(done.iterdir()) == []
    assert source.read_text() == "x"


def test_unique_path_cost_does_not_grow_with_the_number_of_same_named_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Testers often reuse one file name (result.xml); Done then holds result (2).xml
    # ... result (N).xml and finding a free name must not stat all N of them.
    (tmp_path / "result.xml").touch()
    for n in range(2, 2001):
        (tmp_path / f"result ({n}).xml").touch()
    calls = 0
    real_stat = os.stat

    def counting_stat(*args: object, **kwargs: object) -> os.stat_result:
        nonlocal calls
        calls += 1
        return real_stat(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", counting_stat)
    assert unique_path(tmp_path, "result.xml") == tmp_path / "result (2001).xml"
    assert calls <= 40


def test_unique_path_with_gaps_still_never_returns_a_taken_name(tmp_path: Path) -> None:
    for name in ["a.txt", "a (2).txt", "a (3).txt", "a (5).txt", "a (8).txt"]:
        (tmp_path / name).touch()
    free = unique_path(tmp_path, "a.txt")
    assert not free.exists() and free.name.startswith("a (")


def _no_cross_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make link and rename fail with EXDEV between folders, as between volumes."""
    real_link, real_replace = os.link, os.replace

    def crosses(src: object, dst: object) -> bool:
        return Path(str(src)).parent != Path(str(dst)).parent

    def link(src: object, dst: object) -> None:
        if crosses(src, dst):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_link(src, dst)  # type: ignore[arg-type]

    def replace(src: object, dst: object) -> None:
        if crosses(src, dst):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "replace", replace)


def test_move_to_another_file_system_copies_then_removes_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # done_path on another drive or share: link and rename fail with EXDEV.
    done = tmp_path / "other-volume" / "Done"
    _no_cross_device(monkeypatch)
    for n in range(2):
        source = tmp_path / "r.txt"
        source.write_text(f"run {n}")
        moved = move_no_overwrite(source, done)
        assert not source.exists()
        assert moved.read_text() == f"run {n}"
    assert sorted(p.name for p in done.iterdir()) == ["r (2).txt", "r.txt"]


@pytest.mark.parametrize("error", [errno.EINVAL, errno.EIO])
def test_move_across_when_the_folder_cannot_be_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    # A share that cannot fsync folders (EINVAL) still gets the file; a real I/O error
    # fails the move whole, so that the retry leaves no second copy behind.
    done = tmp_path / "share" / "Done"
    _no_cross_device(monkeypatch)

    def fsync_dir(path: Path) -> None:
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(_fsutil, "fsync_dir", fsync_dir)
    source = tmp_path / "r.txt"
    source.write_text("x")
    if error == errno.EINVAL:
        assert move_no_overwrite(source, done).read_text() == "x"
        assert not source.exists()
    else:
        with pytest.raises(OSError):
            move_no_overwrite(source, done)
        assert source.exists() and list(done.iterdir()) == []


# --- Windows semantics, emulated: a file another program holds open cannot be renamed
# or deleted (PermissionError), a read-only file cannot be deleted, and a rename
# refuses an existing target. The Windows branches run here with those rules.


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fsutil, "_IS_WINDOWS", True)
    monkeypatch.setattr(_fsutil, "_SHARING_FIRST_DELAY", 0.0001)
    real_rename = Path.rename
    real_unlink = Path.unlink

    def rename_no_overwrite(self: Path, target: Path) -> Path:
        if Path(target).exists():
            raise FileExistsError(errno.EEXIST, "Cannot create a file when it already exists")
        return real_rename(self, target)

    def unlink_unless_read_only(self: Path, missing_ok: bool = False) -> None:
        if self.exists() and not self.stat().st_mode & stat.S_IWRITE:
            raise PermissionError(errno.EACCES, "Access is denied", str(self))
        real_unlink(self, missing_ok)

    def no_hard_links(source: object, target: object) -> None:
        raise AssertionError("the Windows branch renames; it must not hard-link")

    monkeypatch.setattr(Path, "rename", rename_no_overwrite)
    monkeypatch.setattr(Path, "unlink", unlink_unless_read_only)
    monkeypatch.setattr(_fsutil.os, "link", no_hard_links)


def _held_open_for(calls: int, operation: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``os.<operation>`` meets a sharing violation ``calls`` times, then works."""
    real = getattr(os, operation)
    seen: list[str] = []

    def held(*args: object) -> object:
        seen.append(operation)
        if len(seen) <= calls:
            raise PermissionError(errno.EACCES, "The process cannot access the file", str(args[0]))
        return real(*args)

    monkeypatch.setattr(_fsutil.os, operation, held)
    return seen


@pytest.mark.usefixtures("windows")
def test_windows_replace_waits_out_a_brief_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "queued.json").write_text("new")
    (tmp_path / "sent.json").write_text("old")
    calls = _held_open_for(3, "replace", monkeypatch)
    _fsutil.replace_file(tmp_path / "queued.json", tmp_path / "sent.json")
    assert (tmp_path / "sent.json").read_text() == "new"
    assert len(calls) == 4


@pytest.mark.usefixtures("windows")
def test_windows_replace_gives_up_on_a_long_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "queued.json").write_text("new")
    calls = _held_open_for(1000, "replace", monkeypatch)
    with pytest.raises(PermissionError):
        _fsutil.replace_file(tmp_path / "queued.json", tmp_path / "sent.json")
    assert len(calls) == _fsutil._SHARING_RETRIES
    assert (tmp_path / "queued.json").read_text() == "new"


def test_posix_replace_does_not_retry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fsutil, "_IS_WINDOWS", False)
    calls = _held_open_for(1, "replace", monkeypatch)
    with pytest.raises(PermissionError):
        _fsutil.replace_file(tmp_path / "a", tmp_path / "b")
    assert len(calls) == 1


@pytest.mark.usefixtures("windows")
def test_windows_remove_clears_the_read_only_attribute(tmp_path: Path) -> None:
    result = tmp_path / "R1.csv"
    result.write_text("x")
    result.chmod(stat.S_IREAD)
    _fsutil.remove_file(result)
    assert not result.exists()
    _fsutil.remove_file(result)  # already gone: nothing to do


@pytest.mark.usefixtures("windows")
def test_windows_move_renames_and_never_overwrites(tmp_path: Path) -> None:
    done = tmp_path / "Done"
    done.mkdir()
    (done / "R1.csv").write_text("earlier run")
    source = tmp_path / "R1.csv"
    source.write_text("this run")
    target = move_no_overwrite(source, done)
    assert target == done / "R1 (2).csv"
    assert target.read_text() == "this run"
    assert (done / "R1.csv").read_text() == "earlier run"
    assert not source.exists()


@pytest.mark.usefixtures("windows")
def test_windows_move_of_a_file_held_open_leaves_no_copy_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a hard link would succeed and its unlink fail: every retry added a copy."""
    source = tmp_path / "R1.csv"
    source.write_text("still open in the tester")
    held_file = source.stat().st_ino  # the hold is on the file, so on every name it has
    real_unlink = Path.unlink

    def refused(self: Path, *args: object) -> Path:
        raise PermissionError(errno.EACCES, "The process cannot access the file", str(self))

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self.exists() and self.stat().st_ino == held_file:
            refused(self)
        real_unlink(self, missing_ok)

    monkeypatch.setattr(Path, "rename", refused)
    monkeypatch.setattr(Path, "unlink", unlink)
    for _ in range(3):  # the intake retries a failed move later
        with pytest.raises(PermissionError):
            move_no_overwrite(source, tmp_path / "Done")
    assert list((tmp_path / "Done").iterdir()) == []
    assert source.read_text() == "still open in the tester"
