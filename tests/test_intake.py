"""IntakePipeline: convert -> enqueue durably -> post action, errors, timeouts, journals, recovery.

A fake converter (JSON files saying how to behave) drives a real FileWatcher,
a real QueueStore and real files, so what is asserted is what lands on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from pywats_client.converters import ConverterManager
from pywats_client.core import ClientConfig
from pywats_client.errors import ConversionError
from pywats_client.queue import NewReport, QueueStore
from pywats_client.services import intake as intake_module
from pywats_client.services._journal import (
    BatchJournal,
    CrashCounts,
    ProcessedEntry,
    ProcessedJournal,
)
from pywats_client.services._readiness import SourceFile
from pywats_client.services.file_watcher import FileWatcher
from pywats_client.services.intake import IntakePipeline
from tests.helpers import async_wait_until, rescanned

NS = uuid.UUID("6f1c1a52-0000-4000-8000-000000000001")


@dataclass(frozen=True)
class FakeConversion:
    source: Path
    converter: str
    source_sha256: str
    reports: list[dict[str, Any]] = field(default_factory=list)
    source_size: int | None = None


class FakeConverter:
    """Behaves as the file says: {"fail": msg} | {"boom": 1} | {"sleep": s} | {"hang": 1}
    (until ``unblock`` is set) | {"reports": n}."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.unblock = threading.Event()  # {"hang": 1} waits for this

    def convert(self, path: Path) -> FakeConversion:
        self.calls[path.name] += 1
        raw = path.read_bytes()
        data = json.loads(raw)
        if "sleep" in data:
            time.sleep(data["sleep"])  # the scenario: a slow converter
        if "hang" in data:
            self.unblock.wait(60)
        if "fail" in data:
            raise ConversionError(data["fail"], converter="fake", file=path)
        if "boom" in data:
            raise RuntimeError("converter bug")
        sha = hashlib.sha256(raw).hexdigest()
        reports = [
            {"id": str(uuid.uuid5(NS, f"{sha}\n{i}")), "sn": data.get("sn", path.stem)}
            for i in range(data.get("reports", 1))
        ]
        return FakeConversion(path, "fake", sha, reports, len(raw))


def make_item(report: dict[str, Any], name: str, sha: str, converter: str) -> NewReport:
    return NewReport(report=report, source_name=name, source_sha256=sha, converter=converter)


def make_config(tmp_path: Path, **overrides: Any) -> ClientConfig:
    (tmp_path / "in").mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "watch_paths": [tmp_path / "in"],
        "queue_path": tmp_path / "queue",
        "ready_after": 0.1,
        "rescan_interval": 30.0,
    }
    settings.update(overrides)
    return ClientConfig(**settings)


def drop(config: ClientConfig, name: str, **content: Any) -> Path:
    path = config.watch_dirs[0] / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content or {"sn": name}))
    return path


@dataclass
class Harness:
    config: ClientConfig
    store: QueueStore
    watcher: FileWatcher
    intake: IntakePipeline
    converter: FakeConverter

    @property
    def watch(self) -> Path:
        return self.config.watch_dirs[0]

    def pending_ids(self) -> list[str]:
        return sorted(item.id for item in self.store.iter_items("pending"))

    async def until(self, predicate: Callable[[], Any], timeout: float = 15.0) -> None:
        await async_wait_until(
            predicate, timeout, message=lambda: f"the condition; stats={self.intake.stats}"
        )


@contextlib.asynccontextmanager
async def running(
    config: ClientConfig,
    converter: FakeConverter | None = None,
    store: Any = None,
    **kwargs: Any,
) -> AsyncIterator[Harness]:
    converter = converter or FakeConverter()
    real_store = QueueStore(config.queue_dir)
    intake: IntakePipeline | None = None

    def skip(path: Path, size: int, mtime_ns: int) -> bool:
        return intake is not None and intake.is_processed(path, size, mtime_ns)

    watcher = FileWatcher(config, skip=skip, empty_grace=kwargs.pop("empty_grace", 60.0))
    intake = IntakePipeline(config, watcher, converter, store or real_store, make_item, **kwargs)
    await intake.recover()
    await watcher.start()
    await intake.start()
    try:
        yield Harness(config, real_store, watcher, intake, converter)
    finally:
        await intake.stop(5.0)
        await watcher.stop()


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())  # type: ignore[arg-type]


def files_in(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# --- lifecycle ----------------------------------------------------------------------------


def test_files_are_queued_then_moved_to_done(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    for n in range(3):
        drop(config, f"r{n}.json")
    drop(config, "multi.json", reports=2)

    async def body() -> None:
        async with running(config) as h:
            await h.until(lambda: h.intake.stats.converted == 4)
            assert len(h.pending_ids()) == 5
            assert files_in(h.watch) == [
                "Done/multi.json",
                "Done/r0.json",
                "Done/r1.json",
                "Done/r2.json",
            ]
            assert h.intake.stats.reports_queued == 5
            assert list((config.queue_dir / "intake").glob("batch-*")) == []

    run(body)


def test_conversion_failures_go_to_error_with_a_reason(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    drop(config, "bad.json", fail="no serial number in line 3")
    drop(config, "bug.json", boom=1)
    (config.watch_dirs[0] / "garbage.json").write_text("not json {")
    drop(config, "good.json")

    async def body() -> None:
        async with running(config) as h:
            await h.until(lambda: h.intake.stats.errored == 3 and h.intake.stats.converted == 1)
            error = h.watch / "Error"
            assert files_in(error) == [
                "bad.json",
                "bad.json.error.txt",
                "bug.json",
                "bug.json.error.txt",
                "garbage.json",
                "garbage.json.error.txt",
            ]
            assert "no serial number in line 3" in (error / "bad.json.error.txt").read_text()
            bug = (error / "bug.json.error.txt").read_text()
            assert "RuntimeError: converter bug" in bug and "Traceback" in bug
            assert files_in(h.watch / "Done") == ["good.json"]
            assert len(h.pending_ids()) == 1

    run(body)


def test_empty_file_goes_to_error_after_the_grace_time(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    (config.watch_dirs[0] / "empty.json").touch()

    async def body() -> None:
        async with running(config, empty_grace=0.5) as h:
            await h.until(lambda: h.intake.stats.errored == 1)
            reason = (h.watch / "Error" / "empty.json.error.txt").read_text()
            assert "empty" in reason

    run(body)


def test_hanging_converter_is_abandoned_and_asks_for_a_restart(tmp_path: Path) -> None:
    # the timeout leaves room for a busy machine to convert ok.json in time
    config = make_config(tmp_path, converter_timeout=1.0)
    drop(config, "hang1.json", hang=1)
    drop(config, "hang2.json", hang=1)
    drop(config, "ok.json")
    converter = FakeConverter()

    async def body() -> None:
        async with running(config, converter, stuck_limit=2) as h:
            # restart_required is set after the batch's counters, so wait for it too
            await h.until(
                lambda: (
                    h.intake.stats.errored == 2
                    and h.intake.stats.converted == 1
                    and h.intake.restart_required
                )
            )
            assert h.intake.abandoned == 2
            reason = (h.watch / "Error" / "hang1.json.error.txt").read_text()
            assert "converter_timeout" in reason and "abandoned" in reason
            # where the converter was stuck, so the operator knows which one and why
            assert "in convert" in reason and "self.unblock.wait(60)" in reason
            assert "stuck" in h.intake.restart_required

    try:
        run(body)
    finally:
        converter.unblock.set()  # let the abandoned threads end


_HANGING_PLUGIN = """
import time
from pathlib import Path
from pywats_client.converters import BaseConverter

RELEASE = Path(__file__).parent / "release"

class Hanger(BaseConverter):
    name = "hanger"

    def can_convert(self, file_path: Path) -> bool:
        return file_path.suffix == ".hang"

    def convert(self, file_path: Path) -> None:
        deadline = time.monotonic() + 60
        while not RELEASE.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        raise self.error("released by the test", file_path)
"""


def test_a_timed_out_conversion_names_its_converter_in_the_error_file(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "hanger.py").write_text(_HANGING_PLUGIN)
    config = make_config(tmp_path, converter_timeout=0.5, converter_path=plugins)
    manager = ConverterManager(config)
    assert manager.load() == []
    drop(config, "board.hang")

    async def body() -> None:
        async with running(config, manager) as h:  # type: ignore[arg-type]
            await h.until(lambda: h.intake.stats.errored == 1)
            reason = (h.watch / "Error" / "board.hang.error.txt").read_text()
            assert "converter_timeout" in reason
            assert "converter: hanger" in reason

    try:
        run(body)
    finally:
        (plugins / "release").touch()  # let the abandoned thread end


def test_keep_records_files_so_they_are_not_taken_again(tmp_path: Path) -> None:
    config = make_config(tmp_path, post_action="keep", rescan_interval=0.2)
    path = drop(config, "a.json")

    async def body() -> None:
        async with running(config) as h:
            await h.until(lambda: h.intake.stats.converted == 1)
            rescans = h.watcher.rescans
            await h.until(lambda: h.watcher.rescans >= rescans + 3)
            assert h.converter.calls["a.json"] == 1 and len(h.pending_ids()) == 1
            # touched but unchanged: recorded again, not re-sent
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
            rescans = h.watcher.rescans
            await h.until(lambda: h.watcher.rescans >= rescans + 3)
            assert h.converter.calls["a.json"] == 1 and len(h.pending_ids()) == 1
            # changed content: a new result, converted again
            path.write_text(json.dumps({"sn": "changed"}))
            await h.until(lambda: len(h.pending_ids()) == 2)
            assert path.exists()

    run(body)

    # after a restart the journal still holds the file back
    async def again() -> None:
        async with running(config) as h:
            rescans = h.watcher.rescans
            await h.until(lambda: h.watcher.rescans >= rescans + 3)
            assert h.converter.calls["a.json"] == 0

    run(again)


def test_delete_and_zip_post_actions(tmp_path: Path) -> None:
    deleting = make_config(tmp_path / "d", post_action="delete")
    zipping = make_config(tmp_path / "z", post_action="zip", ready_marker=".ok")
    drop(deleting, "a.json")
    drop(zipping, "b.json")
    (zipping.watch_dirs[0] / "b.json.ok").touch()
    drop(zipping, "sub.json")

    async def body() -> None:
        async with running(deleting) as h:
            await h.until(lambda: h.intake.stats.converted == 1)
            assert files_in(h.watch) == []
        async with running(zipping) as h:
            await h.until(lambda: h.intake.stats.converted == 1)
            [archive] = (h.watch / "Done").glob("*.zip")
            with zipfile.ZipFile(archive) as zf:
                assert zf.namelist() == ["b.json"]
            # sub.json has no marker: it waits
            assert files_in(h.watch) == ["Done/" + archive.name, "sub.json"]

    run(body)


def test_backpressure_stops_taking_files_until_the_queue_drains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path, max_queue_size=2)
    for n in range(5):
        drop(config, f"r{n}.json")

    async def body() -> None:
        async with running(config) as h:
            looks = Counter[str]()
            real_counts = h.store.counts

            def counts() -> Any:  # the intake asks the queue whether there is room
                looks["counts"] += 1
                return real_counts()

            monkeypatch.setattr(h.store, "counts", counts)
            await h.until(lambda: h.intake.stats.backpressure)
            # the intake looked at the full queue twice more and each time took nothing
            looked = looks["counts"]
            await h.until(lambda: looks["counts"] >= looked + 2)
            assert len(h.pending_ids()) == 2 and h.intake.stats.converted == 2
            assert h.intake.stats.taken == 2
            assert len(files_in(h.watch)) == 5  # 2 in Done, 3 waiting in place
            assert h.watcher.paused
            for _ in range(2):  # the uploader takes two
                item = h.store.claim()
                assert item is not None
                h.store.complete(item)
            await h.until(lambda: h.intake.stats.converted == 4)
            for _ in range(2):
                item = h.store.claim()
                assert item is not None
                h.store.complete(item)
            await h.until(lambda: h.intake.stats.converted == 5)
            await h.until(lambda: not h.intake.stats.backpressure)

    run(body)


def test_enqueue_failure_leaves_sources_in_place_and_retries(tmp_path: Path) -> None:
    config = make_config(tmp_path, rescan_interval=0.3)
    drop(config, "a.json")

    class FlakyStore:
        def __init__(self, real: QueueStore) -> None:
            self.real = real
            self.failures = 1

        def enqueue(self, items: Any) -> None:
            if self.failures:
                self.failures -= 1
                raise OSError(28, "No space left on device")
            self.real.enqueue(items)

        def contains(self, report_id: str) -> bool:
            return self.real.contains(report_id)

        def counts(self) -> Any:
            return self.real.counts()

        def iter_items(self, state: Any) -> Any:
            return self.real.iter_items(state)

    async def body() -> None:
        store = FlakyStore(QueueStore(config.queue_dir))
        async with running(config, store=store, enqueue_retry_delay=0.2) as h:
            await h.until(lambda: h.intake.stats.converted == 1)
            assert h.converter.calls["a.json"] == 2
            assert "No space left" in (h.intake.stats.warnings.get("enqueue") or "")
            assert files_in(h.watch) == ["Done/a.json"]
            assert len(h.pending_ids()) == 1

    run(body)


# --- recovery ------------------------------------------------------------------------------


def _source_for(config: ClientConfig, path: Path) -> SourceFile:
    st = path.stat()
    watch = config.watch_dirs[0]
    return SourceFile(path, watch, watch / "Done", watch / "Error", st.st_size, st.st_mtime_ns)


def test_crash_while_converting_makes_suspects_and_skips_ids_already_queued(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path)
    a, b = drop(config, "a.json"), drop(config, "b.json")
    # the previous run queued a's report, then died before recording it
    store = QueueStore(config.queue_dir)
    conversion = FakeConverter().convert(a)
    store.enqueue([make_item(conversion.reports[0], "a.json", conversion.source_sha256, "fake")])
    journal = BatchJournal(config.queue_dir / "intake")
    handle = journal.begin([_source_for(config, a), _source_for(config, b)])
    journal.mark(handle, a, "start")
    journal.mark(handle, a, "end")  # converted, its report queued, then the crash
    journal.mark(handle, b, "start")  # in the converter at the crash

    async def body() -> None:
        async with running(config) as h:
            await h.until(lambda: h.intake.stats.converted == 2)
            assert h.intake.stats.duplicates_skipped == 1
            assert len(h.pending_ids()) == 2  # a once, b once
            assert files_in(h.watch) == ["Done/a.json", "Done/b.json"]
        assert len(CrashCounts(config.queue_dir / "intake")) == 0

    run(body)


def test_a_file_that_crashed_the_worker_twice_is_quarantined(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    poison, fine = drop(config, "poison.json"), drop(config, "fine.json")
    journal = BatchJournal(config.queue_dir / "intake")
    handle = journal.begin([_source_for(config, poison), _source_for(config, fine)])
    journal.mark(handle, poison, "start")
    journal.mark(handle, fine, "start")
    CrashCounts(config.queue_dir / "intake").bump([_source_for(config, poison)], "earlier")

    async def body() -> None:
        async with running(config) as h:
            await h.until(lambda: h.intake.stats.converted == 1 and h.intake.stats.errored == 1)
            assert h.converter.calls["poison.json"] == 0
            assert h.intake.stats.quarantined == 1
            reason = (h.watch / "Error" / "poison.json.error.txt").read_text()
            assert "died 2 times" in reason and "quarantined" in reason
            assert files_in(h.watch / "Done") == ["fine.json"]

    run(body)


def test_crash_after_enqueue_only_redoes_the_post_action(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    a = drop(config, "a.json")
    journal = BatchJournal(config.queue_dir / "intake")
    handle = journal.begin([_source_for(config, a)])
    journal.converted(handle, {a: "queued"})

    async def body() -> None:
        async with running(config) as h:
            await h.until(lambda: files_in(h.watch) == ["Done/a.json"])
            assert h.converter.calls["a.json"] == 0
            assert h.pending_ids() == []  # nothing re-queued: it was queued before the crash
        assert len(CrashCounts(config.queue_dir / "intake")) == 0

    run(body)


def test_graceful_abort_blames_no_file(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    a = drop(config, "a.json")
    journal = BatchJournal(config.queue_dir / "intake")
    journal.abort(journal.begin([_source_for(config, a)]))

    async def body() -> None:
        async with running(config) as h:
            await h.until(lambda: h.intake.stats.converted == 1)
        assert len(CrashCounts(config.queue_dir / "intake")) == 0

    run(body)


def test_stop_during_a_slow_conversion_leaves_the_source_unblamed(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    drop(config, "slow.json", sleep=2)

    async def body() -> None:
        converter = FakeConverter()
        async with running(config, converter) as h:
            await h.until(lambda: converter.calls["slow.json"] == 1)
            started = time.monotonic()
            await h.intake.stop(0.2)
            assert time.monotonic() - started < 5
        assert files_in(config.watch_dirs[0]) == ["slow.json"]
        [batch] = BatchJournal(config.queue_dir / "intake").pending()
        assert batch.aborted

    run(body)


# --- journals ------------------------------------------------------------------------------


def test_batch_journal_tolerates_a_torn_last_line(tmp_path: Path) -> None:
    journal = BatchJournal(tmp_path)
    src = SourceFile(tmp_path / "a", tmp_path, tmp_path / "D", tmp_path / "E", 1, 2)
    handle = journal.begin([src])
    with open(handle, "ab") as f:
        f.write(b'{"outcomes": {"')  # crash mid-append
    [batch] = journal.pending()
    assert batch.files == [src] and batch.outcomes is None and not batch.aborted
    handle.write_bytes(b'{"fil')  # crash mid-first-line: nothing to blame
    [batch] = journal.pending()
    assert batch.files == [] and batch.aborted


@pytest.mark.skipif(not hasattr(psutil.Process, "num_fds"), reason="POSIX fd count")
def test_marks_share_one_open_journal_which_end_and_abort_close(tmp_path: Path) -> None:
    journal = BatchJournal(tmp_path)
    a, b = (SourceFile(tmp_path / n, tmp_path, tmp_path / "D", tmp_path / "E", 1, 2) for n in "ab")
    fds = psutil.Process().num_fds()
    handle = journal.begin([a, b])
    journal.mark(handle, a.path, "start")
    journal.mark(handle, a.path, "end")
    journal.mark(handle, b.path, "start")
    [batch] = journal.pending()  # readable at once: what a crash would leave
    assert batch.started == {str(a.path), str(b.path)} and batch.ended == {str(a.path)}
    journal.end(handle)
    assert not handle.exists() and psutil.Process().num_fds() == fds
    journal.mark(handle, b.path, "end")  # an abandoned converter's late mark: dropped
    assert not handle.exists() and psutil.Process().num_fds() == fds

    handle = journal.begin([a])
    journal.mark(handle, a.path, "start")
    journal.abort(handle)  # a stop while converting: the journal stays, its fd does not
    journal.mark(handle, a.path, "end")  # a converter still running: not opened again
    assert psutil.Process().num_fds() == fds
    [batch] = journal.pending()
    assert batch.aborted and batch.started == {str(a.path)}


def test_crash_counts_count_each_journal_once(tmp_path: Path) -> None:
    counts = CrashCounts(tmp_path)
    src = SourceFile(tmp_path / "a", tmp_path, tmp_path / "D", tmp_path / "E", 1, 2)
    counts.bump([src], "batch-1")
    counts.bump([src], "batch-1")  # recovery redone after a crash during recovery
    assert CrashCounts(tmp_path).count(src) == 1
    counts.bump([src], "batch-2")
    assert CrashCounts(tmp_path).count(src) == 2
    changed = SourceFile(src.path, tmp_path, src.done_dir, src.error_dir, 5, 2)
    assert counts.count(changed) == 0  # a new file under the old name is not a suspect


def test_processed_journal_survives_reload_and_compacts(tmp_path: Path) -> None:
    journal = ProcessedJournal(tmp_path, compact_min=10)
    for n in range(30):
        journal.add([ProcessedEntry(f"/w/{n % 3}", n, n, "sha")])
    assert journal.path.read_text().count("\n") <= 10
    reloaded = ProcessedJournal(tmp_path)
    assert len(reloaded) == 3
    assert reloaded.matches(Path("/w/2"), 29, 29) and not reloaded.matches(Path("/w/2"), 26, 26)
    reloaded.remove([Path("/w/0")])
    assert len(ProcessedJournal(tmp_path)) == 2


@pytest.mark.parametrize("action", ["move", "delete"])
def test_post_action_failure_is_retried_later(
    tmp_path: Path, action: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pywats_client.services import intake as intake_module

    config = make_config(tmp_path, post_action=action, rescan_interval=0.3)
    drop(config, "a.json")
    attempts = Counter[str]()
    real = intake_module.move_to_done if action == "move" else intake_module.delete_source
    name = "move_to_done" if action == "move" else "delete_source"

    def flaky(src: SourceFile) -> Any:
        attempts[src.path.name] += 1
        if attempts[src.path.name] == 1:
            raise PermissionError(13, "file in use by another program")
        return real(src)

    monkeypatch.setattr(intake_module, name, flaky)

    async def body() -> None:
        async with running(config) as h:
            await h.until(lambda: attempts["a.json"] >= 2 and not (h.watch / "a.json").exists())
            assert h.converter.calls["a.json"] == 1 and len(h.pending_ids()) == 1
            assert "file in use" in (h.intake.stats.last_error or "")

    run(body)


def test_a_file_rewritten_during_conversion_is_not_deleted_but_taken_again(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, post_action="delete")
    path = drop(config, "a.json", sn="first")

    class RewritingConverter(FakeConverter):
        def convert(self, path: Path) -> FakeConversion:
            result = super().convert(path)
            if self.calls[path.name] == 1:  # the tester writes the file again meanwhile
                path.write_text(json.dumps({"sn": "second, longer content"}))
            return result

    async def body() -> None:
        async with running(config, RewritingConverter()) as h:
            await h.until(lambda: h.intake.stats.converted == 2 and not path.exists())
            sns = sorted(item.report["sn"] for item in h.store.iter_items("pending"))
            assert sns == ["first", "second, longer content"]

    run(body)


@pytest.mark.parametrize("also_before_the_read", [False, True])
def test_a_file_written_on_during_conversion_queues_only_its_whole_result(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, also_before_the_read: bool
) -> None:
    # A tester pausing longer than ready_after, then writing on: the report of the
    # first part would reach WATS beside the whole one, as a second test of the unit.
    # Bytes written between the watcher's look and the read are part of what was read.
    config = make_config(tmp_path, post_action="delete")
    path = drop(config, "a.json", sn="first")
    whole = path.read_bytes() + (b" " if also_before_the_read else b"") + b"\n  "

    class AppendingConverter(FakeConverter):
        def convert(self, path: Path) -> FakeConversion:
            if also_before_the_read and not self.calls[path.name]:
                with open(path, "ab") as out:
                    out.write(b" ")
            result = super().convert(path)
            if self.calls[path.name] == 1:
                with open(path, "ab") as out:
                    out.write(b"\n  ")
            return result

    async def body() -> None:
        async with running(config, AppendingConverter()) as h:
            await h.until(lambda: h.intake.stats.converted == 2 and not path.exists())
            items = list(h.store.iter_items("pending"))
            assert [i.envelope.source_sha256 for i in items] == [hashlib.sha256(whole).hexdigest()]
            assert "a.json grew while being converted; its report is not queued" in caplog.text

    run(body)


def test_a_file_rewritten_just_before_its_post_action_is_left_for_its_next_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The next result under the same name, written between the check after the
    # conversion and the delete: deleting it would lose a test result.
    config = make_config(tmp_path, post_action="delete")
    path = drop(config, "a.json", sn="first")
    real_unchanged = intake_module._unchanged
    checks: Counter[Path] = Counter()

    def unchanged_then_rewritten(src: SourceFile) -> bool:
        verdict = real_unchanged(src)
        checks[src.path] += 1
        if checks[src.path] == 1:  # right after the first look, the tester writes again
            src.path.write_text(json.dumps({"sn": "second, the next unit"}))
        return verdict

    monkeypatch.setattr(intake_module, "_unchanged", unchanged_then_rewritten)

    async def body() -> None:
        async with running(config) as h:
            await h.until(lambda: h.intake.stats.converted == 2 and not path.exists())
            sns = sorted(item.report["sn"] for item in h.store.iter_items("pending"))
            assert sns == ["first", "second, the next unit"]

    run(body)


async def write_in_two_watched_pieces(h: Harness, out: Any, first: str, second: str) -> None:
    """Write ``first``, let the watcher see it, then ``second``: a file seen being written."""
    out.write(first)
    out.flush()
    # The loop probes what events brought in right after a rescan: after a second
    # rescan the first piece has been looked at (ready_after has not passed yet).
    await rescanned(h.watcher)
    await rescanned(h.watcher)
    out.write(second)
    out.flush()


def test_a_file_read_half_written_stays_and_is_taken_once_complete(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A tester pausing longer than ready_after with the file still open (Linux lets
    # it be read): parked in Error, the rest of the result would land in the Error copy.
    config = make_config(tmp_path, ready_after=2.0)
    path = config.watch_dirs[0] / "r.json"

    async def body() -> None:
        async with running(config) as h:
            with open(path, "w") as out:
                await write_in_two_watched_pieces(h, out, '{"sn": ', '"r-1"')
                await h.until(lambda: "tried again once it has settled" in caplog.text)
                assert h.converter.calls["r.json"] == 1
                assert files_in(h.watch) == ["r.json"]  # still where the tester writes it
                out.write("}")
            await h.until(lambda: h.intake.stats.converted == 1)
            assert files_in(h.watch) == ["Done/r.json"]
            assert [item.report["sn"] for item in h.store.iter_items("pending")] == ["r-1"]
            assert h.intake.stats.errored == 0

    with caplog.at_level(logging.INFO, logger="pywats_client"):
        run(body)


def test_a_bad_file_seen_being_written_is_parked_when_taken_again_unchanged(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, ready_after=2.0, rescan_interval=1.0)
    path = config.watch_dirs[0] / "r.json"

    async def body() -> None:
        async with running(config) as h:
            with open(path, "w") as out:
                await write_in_two_watched_pieces(h, out, "not ", "json")
            await h.until(lambda: h.intake.stats.errored == 1)
            assert h.converter.calls["r.json"] == 2
            assert files_in(h.watch) == ["Error/r.json", "Error/r.json.error.txt"]

    run(body)


def test_a_bad_file_rewritten_again_and_again_is_parked_after_three_tries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path, ready_after=1.0)
    path = config.watch_dirs[0] / "r.json"

    async def body() -> None:
        async with running(config) as h:
            for tries in range(1, 5):
                with open(path, "a") as out:
                    await write_in_two_watched_pieces(h, out, "not ", "json ")
                if tries < 4:
                    await h.until(lambda n=tries: f"({n} of 3)" in caplog.text)
            await h.until(lambda: h.intake.stats.errored == 1)
            assert h.converter.calls["r.json"] == 4
            reason = (h.watch / "Error" / "r.json.error.txt").read_text()
            assert "failed 3 time(s) before, while still being written" in reason

    with caplog.at_level(logging.INFO, logger="pywats_client"):
        run(body)


def test_with_a_ready_marker_a_failed_file_is_parked_at_once(tmp_path: Path) -> None:
    # The marker says the tester is done: a failure is not a half-read file.
    config = make_config(tmp_path, ready_after=2.0, ready_marker=".done")
    path = config.watch_dirs[0] / "r.json"

    async def body() -> None:
        async with running(config) as h:
            with open(path, "w") as out:
                await write_in_two_watched_pieces(h, out, "not ", "json")
            path.with_name("r.json.done").touch()
            await h.until(lambda: h.intake.stats.errored == 1)
            assert h.converter.calls["r.json"] == 1

    run(body)


# --- found in review -------------------------------------------------------------------------


def test_zip_source_that_cannot_be_deleted_is_retried_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Archived, then the delete fails (the tester's viewer holds the file open on
    # Windows). That used to escape and stop the intake; recovery then hit the same
    # error at every start, so the worker crash-looped.
    from pywats_client.services import intake as intake_module

    config = make_config(tmp_path, post_action="zip", rescan_interval=0.3)
    drop(config, "a.json")
    drop(config, "b.json")
    attempts = Counter[str]()
    real = intake_module.delete_source

    def flaky(src: SourceFile) -> None:
        attempts[src.path.name] += 1
        if src.path.name == "a.json" and attempts["a.json"] == 1:
            raise PermissionError(13, "file in use by another program")
        real(src)

    monkeypatch.setattr(intake_module, "delete_source", flaky)

    async def body() -> None:
        async with running(config) as h:
            await h.until(lambda: attempts["a.json"] >= 2 and not (h.watch / "a.json").exists())
            assert h.intake.running
            assert not (h.watch / "b.json").exists()
            assert h.converter.calls["a.json"] == 1 and len(h.pending_ids()) == 2
            [archive] = (h.watch / "Done").glob("*.zip")
            with zipfile.ZipFile(archive) as zf:
                assert sorted(zf.namelist()) == ["a.json", "b.json"]  # not added twice
            assert "file in use" in (h.intake.stats.last_error or "")

    run(body)


def test_watch_folder_without_directory_fsync_does_not_stop_intake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some network and FUSE file systems answer fsync on a folder with EINVAL. The
    # reports are already safe in the queue: that must not stop the station.
    import errno

    from pywats_client.services import intake as intake_module

    watch = (tmp_path / "in").resolve()

    def fsync_dirs(paths: Any) -> None:
        for path in paths:
            if Path(path).is_relative_to(watch):
                raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(intake_module, "fsync_dirs", fsync_dirs)
    config = make_config(tmp_path)
    drop(config, "a.json")
    drop(config, "bad.json", fail="no serial")

    async def body() -> None:
        async with running(config) as h:
            await h.until(lambda: h.intake.stats.converted == 1 and h.intake.stats.errored == 1)
            drop(config, "b.json")
            await h.until(lambda: h.intake.stats.converted == 2)
            assert h.intake.running
            assert files_in(h.watch) == [
                "Done/a.json",
                "Done/b.json",
                "Error/bad.json",
                "Error/bad.json.error.txt",
            ]
            assert list((config.queue_dir / "intake").glob("batch-*")) == []

    run(body)


def test_zip_archive_is_synced_before_its_sources_are_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Else a power cut can keep the sources' unlink and lose the archive's rename.
    from pywats_client.services import intake as intake_module

    events: list[str] = []
    real_sync, real_delete = intake_module.fsync_dirs, intake_module.delete_source

    def sync(paths: Any) -> None:
        paths = list(paths)
        events.extend(f"sync {Path(p).name}" for p in paths)
        real_sync(paths)

    def delete(src: SourceFile) -> None:
        events.append(f"delete {src.path.name}")
        real_delete(src)

    monkeypatch.setattr(intake_module, "fsync_dirs", sync)
    monkeypatch.setattr(intake_module, "delete_source", delete)
    config = make_config(tmp_path, post_action="zip")
    drop(config, "a.json")

    async def body() -> None:
        async with running(config) as h:
            await h.until(lambda: h.intake.stats.converted == 1 and "delete a.json" in events)

    run(body)
    assert "sync Done" in events
    assert events.index("sync Done") < events.index("delete a.json")


def test_only_the_file_being_converted_is_blamed_for_a_crash(tmp_path: Path) -> None:
    # A crash blames the files that were *in* a converter, not the whole batch: a
    # file whose conversion had finished (its reports were being queued) or had not
    # started is innocent. Blaming the batch quarantined innocent files after two
    # unrelated kills.
    config = make_config(tmp_path)
    done_file, in_converter, waiting = (
        drop(config, "done.json"),
        drop(config, "in-converter.json"),
        drop(config, "waiting.json"),
    )
    folder = config.queue_dir / "intake"
    sources = [_source_for(config, p) for p in (done_file, in_converter, waiting)]
    CrashCounts(folder).bump(sources, "batch-earlier")  # each was blamed once before
    journal = BatchJournal(folder)
    handle = journal.begin(sources)
    journal.mark(handle, done_file, "start")
    journal.mark(handle, done_file, "end")
    journal.mark(handle, in_converter, "start")
    # done.json's report reached the queue before the kill
    conversion = FakeConverter().convert(done_file)
    QueueStore(config.queue_dir).enqueue(
        [make_item(conversion.reports[0], "done.json", conversion.source_sha256, "fake")]
    )

    async def body() -> None:
        async with running(config) as h:
            await h.until(lambda: h.intake.stats.converted == 2 and h.intake.stats.errored == 1)
            assert h.intake.stats.quarantined == 1
            assert files_in(h.watch) == [
                "Done/done.json",
                "Done/waiting.json",
                "Error/in-converter.json",
                "Error/in-converter.json.error.txt",
            ]
            assert len(h.pending_ids()) == 2 and h.intake.stats.duplicates_skipped == 1
        assert len(CrashCounts(folder)) == 0

    run(body)


def test_the_journal_records_which_files_are_in_a_converter(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    drop(config, "ok.json")
    drop(config, "stuck.json", hang=1)
    converter = FakeConverter()

    def in_progress() -> list[Any]:
        return BatchJournal(config.queue_dir / "intake").pending()

    async def body() -> None:
        async with running(config, converter) as h:
            await h.until(lambda: converter.calls["stuck.json"] == 1)
            await h.until(lambda: any(b.ended for b in in_progress()))
            [batch] = in_progress()
            stuck, ok = str(h.watch / "stuck.json"), str(h.watch / "ok.json")
            assert batch.started == {stuck, ok} and batch.ended == {ok}
            converter.unblock.set()
            await h.until(lambda: h.intake.stats.converted == 2)

    try:
        run(body)
    finally:
        converter.unblock.set()


def test_processed_journal_appends_after_a_torn_line_are_not_lost(tmp_path: Path) -> None:
    # A power cut can leave half a line at the end; what is appended after it must
    # not be glued onto it (and so lost at the next start).
    journal = ProcessedJournal(tmp_path)
    journal.add([ProcessedEntry("/w/a", 1, 1, "sha")])
    with open(journal.path, "ab") as handle:
        handle.write(b'{"path":"/w/b","si')
    reopened = ProcessedJournal(tmp_path)
    assert len(reopened) == 1
    reopened.remove([Path("/w/a")])
    reopened.add([ProcessedEntry("/w/c", 3, 3, "sha")])
    again = ProcessedJournal(tmp_path)
    assert again.matches(Path("/w/c"), 3, 3) and len(again) == 1


def test_recovery_on_a_full_queue_disk_does_not_stop_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Recovery compacts processed.jsonl and saves crash counts; with the queue's disk
    # full that raised out of start(), so the worker crash-looped until space was
    # freed instead of holding (as intake does for a full disk everywhere else).
    import errno

    from pywats_client.services import _journal

    config = make_config(tmp_path, post_action="keep")
    kept = drop(config, "kept.json")
    crashed = drop(config, "crashed.json")
    folder = config.queue_dir / "intake"
    st = kept.stat()
    ProcessedJournal(folder).add([ProcessedEntry(str(kept), st.st_size, st.st_mtime_ns, "sha")])
    journal = BatchJournal(folder)
    journal.mark(handle := journal.begin([_source_for(config, crashed)]), crashed, "start")
    assert handle.exists()

    def disk_full(path: Path, text: str, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_journal, "atomic_write_text", disk_full)

    async def body() -> None:
        async with running(config) as h:
            await h.until(lambda: h.intake.stats.converted == 1)
            assert h.converter.calls == Counter({"crashed.json": 1})  # kept.json held back

    run(body)


def test_a_full_queue_disk_when_recording_kept_files_does_not_stop_intake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reports are queued; only the note "this file is kept" cannot be written.
    import errno

    from pywats_client.services import _journal

    config = make_config(tmp_path, post_action="keep")
    real = _journal.ProcessedJournal._append
    full = {"on": True}

    def append(self: Any, payload: str) -> None:
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, payload)

    monkeypatch.setattr(_journal.ProcessedJournal, "_append", append)
    drop(config, "a.json")

    async def body() -> None:
        async with running(config) as h:
            await h.until(
                lambda: (
                    h.intake.stats.converted == 1
                    and "No space left" in (h.intake.stats.last_error or "")
                )
            )
            assert h.intake.running
            full["on"] = False
            drop(config, "b.json")
            await h.until(lambda: h.intake.stats.converted >= 2)
            assert h.intake.running

    run(body)


def test_a_file_whose_reports_crash_the_worker_while_queued_is_still_quarantined(
    tmp_path: Path,
) -> None:
    # Converted fine, but queueing its reports kills the worker (say, out of memory):
    # the first crash does not blame it (it left its converter), the redo does, so
    # the station does not crash-loop on it forever.
    config = make_config(tmp_path)
    heavy = drop(config, "heavy.json")
    folder = config.queue_dir / "intake"
    journal = BatchJournal(folder)
    handle = journal.begin([_source_for(config, heavy)], recovering=True)  # the redo
    journal.mark(handle, heavy, "start")
    journal.mark(handle, heavy, "end")
    CrashCounts(folder).bump([_source_for(config, heavy)], "batch-before")

    async def body() -> None:
        async with running(config) as h:
            await h.until(lambda: h.intake.stats.quarantined == 1)
            assert h.converter.calls["heavy.json"] == 0
            assert files_in(h.watch) == ["Error/heavy.json", "Error/heavy.json.error.txt"]

    run(body)
