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
