"""SIGKILL of a real worker at the dangerous moments of the lifecycle: nothing lost or doubled.

Each test stops the worker at one exact point (a function patched in the child
writes a flag file, then waits) and kills it there with SIGKILL (TerminateProcess
on Windows), then starts a normal worker and checks the outcome on the server
and on disk.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from pywats_client._fsutil import TEMP_SUFFIX
from tests._standin import StandinClient
from tests.e2e._intake_support import RunProcess, write_config, write_result, wsjf
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

N = 12


def hang_at(target: str, flag: Path, when: str = "True") -> str:
    """Prelude replacing ``module:attribute`` with a function that, on a call where
    ``when`` (an expression over ``args``) holds, flags, then hangs; other calls run."""
    module, _, attribute = target.partition(":")
    owner, _, method = attribute.partition(".")
    where = f"_m.{owner}" if method else "_m"
    name = method or owner
    return f"""
import importlib, pathlib, time
_m = importlib.import_module({module!r})
_original = getattr({where}, {name!r})
def _hang(*args, **kwargs):
    if {when}:
        pathlib.Path({str(flag)!r}).write_text("reached")
        time.sleep(3600)  # the scenario: stuck right here until the test kills the worker
    return _original(*args, **kwargs)
setattr({where}, {name!r}, _hang)
"""


def wait_for_contents(folder: Path, names: list[str], worker: RunProcess) -> None:
    """Until ``folder`` holds exactly ``names`` (a temp file left over fails it)."""
    wait_until(
        lambda: sorted(p.name for p in folder.iterdir()) == sorted(names),
        30,
        message=lambda: (
            f"{folder} holds {sorted(p.name for p in folder.iterdir())}; {worker.tail()}"
        ),
    )


def drop_batch(station: Path) -> set[str]:
    sns = {f"CRASH-{n:03d}" for n in range(N)}
    for sn in sorted(sns):
        write_result(station / "in", sn)
    return sns


def finish_and_check(station: Path, standin: StandinClient, sns: set[str]) -> str:
    """Run a normal worker until every report is on the server once; returns its log."""
    worker = RunProcess(station / "config.json").start()
    try:
        standin.wait_for_reports(len(sns), timeout=60)
        wait_until(
            lambda: sorted(p.name for p in (station / "in").iterdir()) == ["Done"],
            30,
            message=lambda: f"sources in Done; log:\n{worker.tail()}",
        )
        assert len(list((station / "in" / "Done").iterdir())) == len(sns)
        assert worker.stop() == 0
    finally:
        worker.kill()
    reports = standin.reports()  # after the worker stopped: every upload it ever made
    assert sorted(r["sn"] for r in reports) == sorted(sns)
    assert [r for r in reports if r["times_received"] != 1] == []
    assert list((station / "queue" / "pending").iterdir()) == []
    assert list((station / "queue" / "intake").glob("batch-*")) == []
    return worker.log()


def test_kill_between_enqueue_and_post_action(tmp_path: Path, standin: StandinClient) -> None:
    station = tmp_path / "station"
    flag = tmp_path / "reached"
    config = write_config(station, standin)
    # No upload may be in flight at the kill (an upload cut off mid-request is
    # legitimately sent again: at-least-once); this test is about the intake.
    standin.set_faults(down=True)
    prelude = hang_at("pywats_client.services.intake:move_to_done", flag)
    worker = RunProcess(config, prelude=prelude).start()
    try:
        sns = drop_batch(station)
        wait_until(flag.exists, 30, message=lambda: f"post action reached; {worker.tail()}")
        # the reports are queued (maybe even uploaded); the sources are not moved yet
        assert len(list((station / "in").glob("*.json"))) == N
        worker.kill()
    finally:
        worker.kill()
    standin.clear_faults()
    log = finish_and_check(station, standin, sns)
    assert "already queued before the crash" not in log  # journal knew: nothing re-converted


def test_kill_after_enqueue_before_the_journal_knows(
    tmp_path: Path, standin: StandinClient
) -> None:
    """The reports are in the queue but the journal does not say so: the files are
    converted again on restart (same ids) and the ids already queued are not re-added."""
    station = tmp_path / "station"
    flag = tmp_path / "reached"
    config = write_config(station, standin)
    standin.set_faults(down=True)  # keep the reports pending so the restart sees them queued
    prelude = hang_at("pywats_client.services._journal:BatchJournal.converted", flag)
    worker = RunProcess(config, prelude=prelude).start()
    try:
        sns = drop_batch(station)
        wait_until(flag.exists, 30, message=lambda: f"journal point reached; {worker.tail()}")
        queued = len(list((station / "queue" / "pending").iterdir()))
        assert queued >= 1  # the first batch (maybe all files) is durably queued
        worker.kill()
    finally:
        worker.kill()
    standin.clear_faults()
    log = finish_and_check(station, standin, sns)
    skipped = re.findall(r"(\d+) report\(s\) were already queued before the crash", log)
    assert sum(int(n) for n in skipped) == queued
    # converted before the kill, so redone in batches and not blamed for the crash
    assert "died while converting" not in log


def test_kill_after_a_half_written_file_was_left_to_settle(
    tmp_path: Path, standin: StandinClient
) -> None:
    """A file read half-written is left in place, not parked; a kill right after that
    decision (its batch journal not yet ended) loses nothing and blames nothing."""
    station = tmp_path / "station"
    flag = tmp_path / "reached"
    # ready_after leaves time to write the second piece once the worker has seen the first
    config = write_config(station, standin, ready_after=3.0)
    prelude = hang_at("pywats_client.services._journal:BatchJournal.end", flag)
    worker = RunProcess(config, prelude=prelude).start()
    text = json.dumps(wsjf("SLOW-001"))
    source = station / "in" / "SLOW-001.json"
    try:
        with open(source, "w", encoding="utf-8") as out:
            out.write(text[:20])
            out.flush()
            wait_until(lambda: " 1 seen" in worker.current_log(), 30, message=worker.tail)
            out.write(text[20:40])  # seen changing: a tester writing it in place
            out.flush()
            wait_until(flag.exists, 30, message=lambda: f"batch end reached; {worker.tail()}")
            assert "stays and is tried again once it has settled" in worker.current_log()
            worker.kill()
            out.write(text[40:])
    finally:
        worker.kill()
    assert not (station / "in" / "Error").exists()
    log = finish_and_check(station, standin, {"SLOW-001"})
    assert "died while converting" not in log


def kill_at_reason_rename(config: Path, flag: Path) -> None:
    """Run a worker until it is about to rename a reason into place, then kill it: the
    reason's temp file is left in the Error folder."""
    # the reason is written, not yet renamed into place
    prelude = hang_at(
        "pywats_client._fsutil:replace_file", flag, when="str(args[1]).endswith('.error.txt')"
    )
    worker = RunProcess(config, prelude=prelude, name="hung")
    worker.start(wait=False)  # quarantine writes its reason before the worker runs
    try:
        wait_until(flag.exists, 30, message=lambda: f"reason rename reached; {worker.tail()}")
    finally:
        worker.kill()
    error = config.parent / "in" / "Error"
    assert [p.name for p in error.iterdir() if p.name.endswith(TEMP_SUFFIX)] != []


@pytest.mark.parametrize(
    ("name", "content", "settings"),
    [
        ("BAD-001.json", '{"not": "a report"', {}),  # converted in a batch, and failed
        ("BIG-001.json", "x" * 100, {"max_file_size": 10}),  # refused before any batch
    ],
    ids=["conversion-failed", "refused-before-converting"],
)
def test_kill_while_the_reason_of_a_bad_file_is_written(
    tmp_path: Path, standin: StandinClient, name: str, content: str, settings: dict[str, int]
) -> None:
    """The reason's temp file is complete but not renamed when the worker dies: after
    the restart the file is parked once, with its reason, and no temp file is left."""
    station = tmp_path / "station"
    flag = tmp_path / "reached"
    config = write_config(station, standin, **settings)
    (station / "in").mkdir(parents=True, exist_ok=True)
    (station / "in" / name).write_text(content)
    kill_at_reason_rename(config, flag)
    error = station / "in" / "Error"
    assert (station / "in" / name).exists()  # not moved before its reason was there
    final = RunProcess(config, name="final").start()
    try:
        wait_for_contents(error, [name, f"{name}.error.txt"], final)
        assert name in (error / f"{name}.error.txt").read_text()
        assert sorted(p.name for p in (station / "in").iterdir()) == ["Error"]
        assert final.stop() == 0
    finally:
        final.kill()
    assert standin.reports() == []


def test_kill_while_a_source_is_copied_to_a_done_folder_on_another_volume(
    tmp_path: Path, standin: StandinClient
) -> None:
    """The copy in Done is complete but not under its name when the worker dies: after
    the restart the source is in Done once, its report on the server once, no temp left."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second file system (/dev/shm)")
    done = Path(tempfile.mkdtemp(prefix="pywats-done-", dir=shm))
    try:
        station = tmp_path / "station"
        flag = tmp_path / "reached"
        config = write_config(station, standin, done_path=str(done))
        write_result(station / "in", "XVOL-001")
        standin.set_faults(down=True)  # no upload in flight at the kill (see above)
        # the copy is written and fsync'd, not yet given its name
        prelude = hang_at(
            "pywats_client._fsutil:_place", flag, when=f"str(args[0]).endswith({TEMP_SUFFIX!r})"
        )
        worker = RunProcess(config, prelude=prelude, name="hung").start()
        try:
            wait_until(flag.exists, 30, message=lambda: f"copy to Done reached; {worker.tail()}")
        finally:
            worker.kill()
        assert [p.name.endswith(TEMP_SUFFIX) for p in done.iterdir()] == [True]
        assert (station / "in" / "XVOL-001.json").exists()  # the source waits for its copy
        standin.clear_faults()
        final = RunProcess(config, name="final").start()
        try:
            standin.wait_for_reports(1, timeout=60)
            wait_for_contents(done, ["XVOL-001.json"], final)
            wait_for_contents(station / "in", [], final)
            assert final.stop() == 0
        finally:
            final.kill()
        [report] = standin.reports()
        assert (report["sn"], report["times_received"]) == ("XVOL-001", 1)
    finally:
        shutil.rmtree(done, ignore_errors=True)


GROW_WHILE_CONVERTED = """
import importlib
_manager = importlib.import_module("pywats_client.converters.manager")
_convert = _manager.ConverterManager.convert
_grown = set()
def _convert_then_grow(self, path, *args, **kwargs):
    result = _convert(self, path, *args, **kwargs)
    if path not in _grown:  # the tester writes on while the file is converted
        _grown.add(path)
        with open(path, "ab") as out:
            out.write(b"\\n  ")
    return result
_manager.ConverterManager.convert = _convert_then_grow
"""


def test_kill_after_the_report_of_a_growing_file_was_held_back(
    tmp_path: Path, standin: StandinClient
) -> None:
    """The report of a file that grew while converted is not queued; a kill right after
    that decision (its batch journal not yet ended) leaves only the whole result to send."""
    station = tmp_path / "station"
    flag = tmp_path / "reached"
    config = write_config(station, standin)
    prelude = GROW_WHILE_CONVERTED + hang_at(
        "pywats_client.services._journal:BatchJournal.end", flag
    )
    write_result(station / "in", "GROW-001")
    worker = RunProcess(config, prelude=prelude).start()
    try:
        wait_until(flag.exists, 30, message=lambda: f"batch end reached; {worker.tail()}")
        assert "GROW-001.json grew while being converted" in worker.current_log()
        worker.kill()
    finally:
        worker.kill()
    assert standin.reports() == []
    log = finish_and_check(station, standin, {"GROW-001"})  # once: the whole file's report
    assert "died while converting" not in log


POISON = '''
import os
import signal
from pathlib import Path

from pywats_client.converters import BaseConverter


class Poison(BaseConverter):
    """Kills the whole worker process, like a converter crashing in native code."""

    name = "poison"
    description = "test converter that kills its process"
    patterns = ("*.poison",)

    def can_convert(self, file_path: Path) -> bool:
        return file_path.suffix == ".poison"

    def convert(self, file_path: Path):
        if hasattr(signal, "SIGKILL"):
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)
'''


@pytest.mark.skipif(sys.platform == "win32", reason="the poison converter uses SIGKILL")
def test_a_file_that_kills_the_worker_twice_is_quarantined(
    tmp_path: Path, standin: StandinClient
) -> None:
    station = tmp_path / "station"
    config = write_config(station, standin)
    (station / "converters").mkdir()
    (station / "converters" / "poison.py").write_text(POISON)
    sns = drop_batch(station)
    (station / "in" / "bad.poison").write_text("boom")

    standin.set_faults(down=True)  # no upload in flight when the process dies
    worker = RunProcess(config)
    for _ in range(2):  # the first crash blames the batch, the second only the culprit
        worker.start()
        assert worker.wait_exit(60) != 0, worker.tail()
    standin.clear_faults()
    finish_and_check_quarantine = RunProcess(config, name="final").start()
    try:
        reports = standin.wait_for_reports(N, timeout=60)
        assert {r["sn"] for r in reports} == sns
        assert [r for r in reports if r["times_received"] != 1] == []
        reason_file = station / "in" / "Error" / "bad.poison.error.txt"
        wait_until(reason_file.exists, 30, message=finish_and_check_quarantine.tail)
        reason = reason_file.read_text()
        assert "died 2 times" in reason and "quarantined" in reason
        wait_until(
            lambda: sorted(p.name for p in (station / "in").iterdir()) == ["Done", "Error"], 30
        )
        assert finish_and_check_quarantine.alive()
        assert finish_and_check_quarantine.stop() == 0
    finally:
        finish_and_check_quarantine.kill()


@pytest.mark.skipif(sys.platform == "win32", reason="the poison converter uses SIGKILL")
def test_kill_while_the_reason_of_a_quarantined_file_is_written(
    tmp_path: Path, standin: StandinClient
) -> None:
    """Quarantine writes its reason at start, after the batch journals are closed: a
    kill there leaves a temp file only the crash counts still point to."""
    station = tmp_path / "station"
    flag = tmp_path / "reached"
    config = write_config(station, standin)
    (station / "converters").mkdir()
    (station / "converters" / "poison.py").write_text(POISON)
    (station / "in").mkdir(parents=True, exist_ok=True)
    (station / "in" / "bad.poison").write_text("boom")
    worker = RunProcess(config)
    for _ in range(2):
        worker.start()
        assert worker.wait_exit(60) != 0, worker.tail()
    kill_at_reason_rename(config, flag)
    error = station / "in" / "Error"
    final = RunProcess(config, name="final").start()
    try:
        wait_for_contents(error, ["bad.poison", "bad.poison.error.txt"], final)
        assert "quarantined" in (error / "bad.poison.error.txt").read_text()
        assert final.stop() == 0
    finally:
        final.kill()
