"""Post actions on sources: move without overwrite, error folder with reason, crash-safe zip."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from pywats_client._fsutil import TEMP_SUFFIX
from pywats_client.errors import ConversionError
from pywats_client.services import _post_actions as pa
from pywats_client.services._readiness import SourceFile


def source(watch: Path, rel: str, content: str = "data", marker: str | None = None) -> SourceFile:
    path = watch / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    marker_path = None
    if marker:
        marker_path = Path(f"{path}{marker}")
        marker_path.write_text("")
    st = path.stat()
    return SourceFile(
        path, watch, watch / "Done", watch / "Error", st.st_size, st.st_mtime_ns, marker_path
    )


def test_move_to_done_never_overwrites_and_keeps_subfolders(tmp_path: Path) -> None:
    first = source(tmp_path, "sub/r.json", "first")
    assert pa.move_to_done(first) == tmp_path / "Done" / "sub" / "r.json"
    second = source(tmp_path, "sub/r.json", "second", marker=".ok")
    target = pa.move_to_done(second)
    assert target == tmp_path / "Done" / "sub" / "r (2).json"
    assert (tmp_path / "Done" / "sub" / "r.json").read_text() == "first"
    assert target.read_text() == "second"
    assert not second.path.exists() and not Path(f"{second.path}.ok").exists()


def test_move_to_error_writes_a_reason_file(tmp_path: Path) -> None:
    src = source(tmp_path, "bad.json")
    try:
        raise ConversionError("line 3: no serial number", converter="wsjf", file=src.path)
    except ConversionError as exc:
        report = pa.ErrorReport(str(exc), converter="wsjf", exception=exc)
    target = pa.move_to_error(src, report)
    assert target == tmp_path / "Error" / "bad.json"
    reason = (tmp_path / "Error" / "bad.json.error.txt").read_text()
    assert "line 3: no serial number" in reason
    assert "converter: wsjf" in reason
    # an expected refusal: the reason says it all, no service internals
    assert "Traceback" not in reason and "exception:" not in reason
    assert "time:" in reason and str(src.path) in reason
    # a second bad file of the same name gets its own reason file
    again = pa.move_to_error(source(tmp_path, "bad.json"), pa.ErrorReport("empty"))
    assert again.name == "bad (2).json"
    assert "empty" in (tmp_path / "Error" / "bad (2).json.error.txt").read_text()


def _crash_in_converter() -> None:
    raise ValueError("could not convert string to float: 'n/a'")


def test_only_unexpected_exceptions_get_a_traceback(tmp_path: Path) -> None:
    """A crash inside a converter is worth its traceback; a refusal is not."""
    try:
        try:
            _crash_in_converter()
        except ValueError as crash:
            message = "bench.res: converter 'bench' failed"
            raise ConversionError(message, converter="bench") from crash
    except ConversionError as exc:
        wrapped = exc
    crashed = pa.ErrorReport(str(wrapped), exception=wrapped).render(source(tmp_path, "a.res"))
    assert "converter: bench" in crashed  # taken from the error when not given
    assert "exception: ValueError: could not convert string to float" in crashed
    assert "Traceback" in crashed and "_crash_in_converter" in crashed
    assert "ConversionError" not in crashed  # the wrapper's own frames are service internals

    refused = ConversionError("x.bin: no converter accepts this file. Tried: ...")
    text = pa.ErrorReport(str(refused), exception=refused).render(source(tmp_path, "x.bin"))
    assert "converter: -" in text and "Traceback" not in text

    try:
        _crash_in_converter()
    except ValueError as exc:
        bug = exc
    text = pa.ErrorReport("the converter crashed", exception=bug).render(source(tmp_path, "b.res"))
    assert "Traceback" in text and "ValueError" in text


def test_delete_removes_source_and_marker(tmp_path: Path) -> None:
    src = source(tmp_path, "a.json", marker=".done")
    pa.delete_source(src)
    assert list(tmp_path.iterdir()) == []


def test_zip_appends_to_the_dated_archive(tmp_path: Path) -> None:
    done = tmp_path / "Done"
    a, b = source(tmp_path, "a.json", "A"), source(tmp_path, "sub/b.json", "B")
    archive = pa.zip_sources(done, [a, b], day="2026-03-02")
    assert archive == done / "2026-03-02.zip"
    c = source(tmp_path, "c.json", "C")
    assert pa.zip_sources(done, [c], day="2026-03-02") == archive
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        assert sorted(zf.namelist()) == ["a.json", "c.json", "sub/b.json"]
        assert zf.read("sub/b.json") == b"B"
    assert [p.name for p in done.iterdir()] == ["2026-03-02.zip"]  # no temp left


def test_zip_redo_after_crash_does_not_add_twice_but_keeps_different_content(
    tmp_path: Path,
) -> None:
    done = tmp_path / "Done"
    a = source(tmp_path, "a.json", "A")
    pa.zip_sources(done, [a], day="d")
    pa.zip_sources(done, [a], day="d")  # crash before the source was deleted: redone
    a2 = source(tmp_path, "a.json", "A, other run")
    pa.zip_sources(done, [a2], day="d")
    with zipfile.ZipFile(done / "d.zip") as zf:
        assert sorted(zf.namelist()) == ["a (2).json", "a.json"]
        assert zf.read("a (2).json") == b"A, other run"


def test_zip_rolls_over_at_the_size_limit(tmp_path: Path) -> None:
    done = tmp_path / "Done"
    pa.zip_sources(done, [source(tmp_path, "a.json", "A" * 2000)], day="d", limit=100)
    second = pa.zip_sources(done, [source(tmp_path, "b.json", "B")], day="d", limit=100)
    assert second == done / "d-2.zip"


def test_zip_failure_leaves_the_old_archive_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = tmp_path / "Done"
    pa.zip_sources(done, [source(tmp_path, "a.json", "A")], day="d")
    before = (done / "d.zip").read_bytes()
    calls = 0
    original = zipfile.ZipFile.write

    def failing_write(self: zipfile.ZipFile, *args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(28, "No space left on device")
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile.ZipFile, "write", failing_write)
    b, c = source(tmp_path, "b.json", "B"), source(tmp_path, "c.json", "C")
    with pytest.raises(OSError):
        pa.zip_sources(done, [b, c], day="d")
    assert (done / "d.zip").read_bytes() == before
    assert [p.name for p in done.iterdir()] == ["d.zip"]


def test_sweep_removes_the_temp_files_a_crash_leaves_and_nothing_else(tmp_path: Path) -> None:
    done, error = tmp_path / "Done", tmp_path / "Error"
    done.mkdir()
    error.mkdir()
    left = [
        done / f".2026-11-27.zip.abc{TEMP_SUFFIX}",  # an archive's new copy
        done / f".SN-1.json.x7q2{TEMP_SUFFIX}",  # a source copied to another volume
        error / f".a.json.error.txt.k3j9{TEMP_SUFFIX}",  # a reason
    ]
    kept = [
        done / "SN-0.json",
        done / "2026-11-26.zip",
        error / "a.json",
        error / "a.json.error.txt",
    ]
    for path in left + kept:
        path.write_text("x")
    assert pa.sweep_temps([done, error, done, tmp_path / "gone"]) == 3
    assert sorted(tmp_path.rglob("*")) == sorted([done, error, *kept])


def test_count_parked_counts_sources_with_their_reasons(tmp_path: Path) -> None:
    error = tmp_path / "Error"
    assert pa.count_parked(error) == 0  # nothing has failed yet
    pa.move_to_error(source(tmp_path, "bad.json"), pa.ErrorReport("no serial"))
    pa.move_to_error(source(tmp_path, "bad.json"), pa.ErrorReport("empty"))  # bad (2).json
    pa.move_to_error(source(tmp_path, "line2/x.csv"), pa.ErrorReport("no header"))
    pa.move_to_error(source(tmp_path, "fixed.csv"), pa.ErrorReport("no header"))
    (error / "fixed.csv").unlink()  # dealt with: its reason stays behind
    (error / f".c.json.error.txt.k3j9{TEMP_SUFFIX}").write_text("half a reason")
    for other in ("desktop.ini", "~$report.xlsx", "r.json"):  # shares the folder (a Done)
        (error / other).write_text("x")
    # bad.json, bad (2).json, and x.csv under the sub-folder a recursive watch uses
    assert pa.count_parked(error) == 3


def test_count_parked_does_not_know_a_folder_whose_parent_is_gone(tmp_path: Path) -> None:
    assert pa.count_parked(tmp_path / "share" / "Error") is None  # not 0: a share is gone


def test_count_parked_follows_sub_folders_only_so_deep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = tmp_path / "Error"
    pa.move_to_error(source(tmp_path, "a/bad.csv"), pa.ErrorReport("no header"))
    pa.move_to_error(source(tmp_path, "a/b/deeper.csv"), pa.ErrorReport("no header"))
    assert pa.count_parked(error) == 2
    monkeypatch.setattr(pa, "_MAX_DEPTH", 1)  # a folder link looping back ends like this
    assert pa.count_parked(error) == 1


def test_a_converted_file_does_not_count_as_parked_where_done_is_error(tmp_path: Path) -> None:
    """One folder for Done and Error: a file fixed and dropped again lands beside its
    old reason, which made it count as parked for good."""
    shared = tmp_path / "processed"

    def src(content: str) -> SourceFile:
        s = source(tmp_path, "x.csv", content)
        return SourceFile(s.path, tmp_path, shared, shared, s.size, s.mtime_ns, None)

    pa.move_to_error(src("bad"), pa.ErrorReport("no header"))
    (shared / "x.csv").replace(tmp_path / "x.csv")  # the operator moves it back, fixed
    assert pa.move_to_done(src("fixed")) == shared / "x.csv"
    assert pa.count_parked(shared) == 0
    assert sorted(p.name for p in shared.iterdir()) == ["x.csv"]


def test_count_parked_ends_in_a_folder_link_that_loops(tmp_path: Path) -> None:
    error = tmp_path / "Error"
    pa.move_to_error(source(tmp_path, "deep/bad.csv"), pa.ErrorReport("no header"))
    try:
        (error / "deep" / "loop").symlink_to(error, target_is_directory=True)
    except OSError:
        pytest.skip("no symlinks here")
    assert pa.count_parked(error) == 1


def test_count_parked_names_a_folder_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = tmp_path / "Error"
    pa.move_to_error(source(tmp_path, "sub/bad.csv"), pa.ErrorReport("no header"))
    real_scandir = pa.os.scandir

    def refuse(path: object) -> object:
        if Path(str(path)) == error / "sub":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(pa.os, "scandir", refuse)
    with pytest.raises(PermissionError) as raised:
        pa.count_parked(error)
    assert raised.value.filename == str(error / "sub")


# --- found in review -------------------------------------------------------------------------


def test_a_file_never_sits_in_error_without_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reason is written before the move: a crash (or a full disk) in between
    # leaves the source in the watch folder to be handled again, never a bare file
    # in Error that no one can explain.
    src = source(tmp_path, "bad.json")

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(pa, "atomic_write_text", crash)
        with pytest.raises(OSError):
            pa.move_to_error(src, pa.ErrorReport("garbage"))
    assert src.path.exists()
    assert [p for p in (tmp_path / "Error").glob("*") if not p.name.endswith(".error.txt")] == []
    target = pa.move_to_error(src, pa.ErrorReport("garbage"))
    assert target == tmp_path / "Error" / "bad.json"
    assert "garbage" in (tmp_path / "Error" / "bad.json.error.txt").read_text()
