"""FileWatcher and its rules: readiness, rescans, exclusions, markers, claims, observer health."""

from __future__ import annotations

import asyncio
import errno
import fnmatch
import logging
import ntpath
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from pywats_client.core import ClientConfig
from pywats_client.services import _post_actions, _scan
from pywats_client.services import file_watcher as file_watcher_module
from pywats_client.services._observer import build_observer
from pywats_client.services._readiness import ProbeResult, ReadinessTracker, probe
from pywats_client.services._scan import FilterRules, WatchRoot, build_roots, root_for, scan_root
from pywats_client.services.file_watcher import FileWatcher, SourceFile
from tests.helpers import async_wait_until, rescanned

LINUX = sys.platform.startswith("linux")


def make_config(tmp_path: Path, **overrides: Any) -> ClientConfig:
    watch = tmp_path / "in"
    watch.mkdir(exist_ok=True)
    settings: dict[str, Any] = {
        "watch_paths": [watch],
        "queue_path": tmp_path / "queue",
        "ready_after": 0.3,
        "rescan_interval": 30.0,
    }
    settings.update(overrides)
    return ClientConfig(**settings)


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro_fn())  # type: ignore[arg-type]


async def collect(watcher: FileWatcher, n: int, timeout: float = 15.0) -> list[SourceFile]:
    """Wait for ``n`` ready files (claimed), failing after ``timeout``."""
    got: list[SourceFile] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(got)} of {n} files became ready: {got}"
        got += await watcher.get_ready(n - len(got), timeout=remaining)
    return got


async def only_the_canary_comes(
    watcher: FileWatcher, folder: Path, marker: str | None = None
) -> None:
    """Negative check on the watcher's own progress instead of a quiet spell.

    After one more full rescan a new file, the canary, is written and awaited.
    Whatever that rescan (or an event before it) wrongly picked up became ready
    no later than the canary, so it would come out with it or before it.
    """
    await rescanned(watcher)
    canary = folder / "zz-canary.json"
    canary.write_text("{}")
    if marker:
        canary.with_name(canary.name + marker).write_text("")
    got = await collect(watcher, 1)
    got += await watcher.get_ready(10, timeout=0)
    assert [s.path for s in got] == [canary], got


class _Emitter:
    def __init__(self, thread: threading.Thread) -> None:
        self._thread = thread

    def is_alive(self) -> bool:
        return self._thread.is_alive()


class NoEventsObserver:
    """An observer that delivers nothing: events lost (network share, overflow)."""

    def __init__(self) -> None:
        self.daemon = True
        self._thread = threading.Thread(target=self._idle, daemon=True)
        self._stop = threading.Event()
        self.emitters: set[Any] = set()

    def _idle(self) -> None:
        self._stop.wait()

    def schedule(self, event_handler: Any, path: str, **kwargs: Any) -> None:
        self.emitters.add(_Emitter(self._thread))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()


# --- readiness state machine (fake clock) ------------------------------------------


def _root(tmp_path: Path) -> WatchRoot:
    return WatchRoot(tmp_path, tmp_path / "Done", tmp_path / "Error", recursive=False)


def probe_results(
    tracker: ReadinessTracker, now: float, *, size: int, mtime_ns: int
) -> list[ProbeResult]:
    """What probing the due files would return if each had ``size``/``mtime_ns``."""
    return [ProbeResult(p.path, size, mtime_ns) for p in tracker.due(now)]


def test_tracker_needs_ready_after_of_stability_then_an_open(tmp_path: Path) -> None:
    tracker = ReadinessTracker(ready_after=1.0)
    path = tmp_path / "a.json"
    tracker.add(path, _root(tmp_path), now=0.0)
    [first] = tracker.due(0.0)
    assert not first.confirm  # nothing known yet: just look
    tracker.apply([ProbeResult(path, 10, 111)], now=0.0)
    assert tracker.due(0.5) == []  # not due before ready_after
    assert tracker.next_deadline() == pytest.approx(1.0)
    [check] = tracker.due(1.0)
    assert check.confirm and (check.size, check.mtime_ns) == (10, 111)
    out = tracker.apply([ProbeResult(path, 10, 111, openable=True)], now=1.0)
    assert [s.path for s in out.ready] == [path] and out.ready[0].size == 10
    assert len(tracker) == 0


def test_tracker_restarts_the_clock_when_the_file_grows(tmp_path: Path) -> None:
    tracker = ReadinessTracker(ready_after=1.0)
    path = tmp_path / "a.json"
    tracker.add(path, _root(tmp_path), now=0.0)
    tracker.apply(probe_results(tracker, 0.0, size=10, mtime_ns=1), now=0.0)
    out = tracker.apply([ProbeResult(path, 20, 2)], now=1.0)  # grew
    assert not out.ready
    assert tracker.due(1.5) == []
    [check] = tracker.due(2.0)
    assert check.confirm and check.size == 20


def test_tracker_waits_while_the_file_cannot_be_opened(tmp_path: Path) -> None:
    tracker = ReadinessTracker(ready_after=0.5, defer_after=100)
    path = tmp_path / "a.json"
    tracker.add(path, _root(tmp_path), now=0.0)
    tracker.apply([ProbeResult(path, 10, 1)], now=0.0)
    out = tracker.apply([ProbeResult(path, 10, 1, openable=False)], now=0.5)
    assert not out.ready and path in tracker
    out = tracker.apply([ProbeResult(path, 10, 1, openable=True)], now=1.0)
    assert [s.path for s in out.ready] == [path]


def test_tracker_rejects_a_file_that_stays_empty(tmp_path: Path) -> None:
    tracker = ReadinessTracker(ready_after=0.5, empty_grace=5.0)
    path = tmp_path / "a.json"
    tracker.add(path, _root(tmp_path), now=0.0)
    tracker.apply([ProbeResult(path, 0, 1)], now=0.0)
    assert not tracker.apply([ProbeResult(path, 0, 1)], now=1.0).rejected
    out = tracker.apply([ProbeResult(path, 0, 1)], now=5.5)
    assert [s.path for s in out.rejected] == [path]
    assert "empty" in (out.rejected[0].reject_reason or "")


def test_tracker_rejects_oversized_files_and_defers_never_ready_ones(tmp_path: Path) -> None:
    tracker = ReadinessTracker(ready_after=0.1, max_file_size=5, defer_after=3.0)
    big, locked = tmp_path / "big.json", tmp_path / "locked.json"
    for p in (big, locked):
        tracker.add(p, _root(tmp_path), now=0.0)
    tracker.apply([ProbeResult(big, 6, 1), ProbeResult(locked, 3, 1)], now=0.0)
    out = tracker.apply(
        [ProbeResult(big, 6, 1, openable=True), ProbeResult(locked, 3, 1, openable=False)], 1.0
    )
    assert [s.path for s in out.rejected] == [big]
    assert "max_file_size" in (out.rejected[0].reject_reason or "")
    out = tracker.apply([ProbeResult(locked, 3, 1, openable=False)], now=3.5)
    assert out.deferred == [locked] and len(tracker) == 0


def test_tracker_with_marker_ignores_stability_and_waits_for_the_marker(tmp_path: Path) -> None:
    tracker = ReadinessTracker(ready_after=100.0, marker=".done")
    path = tmp_path / "a.json"
    tracker.add(path, _root(tmp_path), now=0.0)
    tracker.apply([ProbeResult(path, 10, 1)], now=0.0)
    [check] = tracker.due(0.0)
    assert check.confirm
    out = tracker.apply([ProbeResult(path, 10, 1, marker_present=False)], now=0.0)
    assert not out.ready
    out = tracker.apply([ProbeResult(path, 10, 1, openable=True, marker_present=True)], 0.3)
    assert [s.marker for s in out.ready] == [tmp_path / "a.json.done"]


def test_probe_reports_gone_files_and_tests_open_only_when_confirming(tmp_path: Path) -> None:
    from pywats_client.services._readiness import Probe

    path = tmp_path / "a.json"
    path.write_text("{}")
    st = path.stat()
    gone = tmp_path / "gone.json"
    results = probe(
        [
            Probe(path, st.st_size, st.st_mtime_ns, confirm=True),
            Probe(path, -1, -1, confirm=True),
            Probe(gone, 1, 1, confirm=True),
        ],
        marker=None,
    )
    assert results[0].openable is True
    assert results[1].openable is None  # changed: no open test
    assert results[2].size is None


# --- scanning rules ---------------------------------------------------------------------


def test_scan_skips_done_error_queue_patterns_and_markers(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        recursive=True,
        file_patterns=["*.json", "*.txt"],
        ready_marker=".ok",
        queue_path=tmp_path / "in" / "queue",
    )
    watch = tmp_path / "in"
    for rel in [
        "a.json",
        "sub/b.txt",
        "c.csv",
        "d.json.tmp",
        "~$e.json",
        "a.json.ok",
        "Done/x.json",
        "Error/y.json",
        "Error/y.json.error.txt",
        "queue/pending/z.json",
    ]:
        path = watch / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    [root] = build_roots(config)
    found = sorted(
        p.relative_to(watch).as_posix() for p, _ in scan_root(root, FilterRules.for_config(config))
    )
    assert found == ["a.json", "sub/b.txt"]


@pytest.mark.parametrize("windows", [False, True])
def test_a_marker_names_its_result_file_and_is_never_one(
    windows: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_scan, "_CASE_INSENSITIVE", windows)
    rules = FilterRules(marker=".done")
    assert rules.marked_name("R1.csv.done") == "R1.csv"
    assert not rules.accepts("R1.csv.done")
    assert rules.marked_name("R1.csv") is None
    assert rules.accepts("R1.csv")
    assert rules.marked_name("_READY") is None
    marker_only = FilterRules(marker="_READY")
    assert marker_only.marked_name("_READY") is None  # a bare marker names no file
    assert not marker_only.accepts("_READY")  # and is not a result file either
    # Windows file names ignore case, so does the marker there
    assert rules.marked_name("R1.CSV.DONE") == ("R1.CSV" if windows else None)
    assert rules.accepts("R1.CSV.DONE") is not windows
    # no file is named "." or "..": such a "marker" is an ordinary (hidden) name
    assert rules.marked_name("..done") is None
    assert rules.marked_name("...done") is None


def test_an_event_for_a_marker_of_no_file_does_not_stop_the_watcher(tmp_path: Path) -> None:
    config = make_config(tmp_path, ready_marker=".done", ignore_patterns=[])
    watcher = FileWatcher(config)
    watch = config.watch_dirs[0]
    watcher._absorb_hints({str(watch / "..done"), str(watch / "R1.csv.done")}, 0.0)
    assert sorted(p.name for p in watcher._tracker._items) == ["..done", "R1.csv"]


_GLOB_TEXT = st.text(alphabet="aAbB.-_~$*?[]!^/\\|(\n", max_size=8)


def _name_near(pattern: str) -> st.SearchStrategy[str]:
    """A name made from ``pattern``: its wildcards filled in, its case flipped or not.

    Random names almost never match random patterns; these often do, or
    nearly, which is where a wrong matcher shows.
    """
    filled = st.text(alphabet="aAbB.\n", max_size=3).map(
        lambda fill: pattern.replace("*", fill).replace("?", "a")
    )
    return st.tuples(filled, st.booleans()).map(lambda t: t[0].swapcase() if t[1] else t[0])


@st.composite
def _rules_and_name(draw: st.DrawFn) -> tuple[list[str], list[str], str]:
    patterns = draw(st.lists(_GLOB_TEXT, max_size=3))
    ignore = draw(st.lists(_GLOB_TEXT, max_size=3))
    either = patterns + ignore
    near = st.sampled_from(either).flatmap(_name_near) if either else _GLOB_TEXT
    return patterns, ignore, draw(_GLOB_TEXT | near)


@given(case=_rules_and_name(), windows=st.booleans())
@example(case=(["a"], [], "A"), windows=False)  # case counts outside Windows
@example(case=(["A*"], [], "ab"), windows=True)  # and not on Windows, patterns included
@example(case=(["*"], [], "a\nb"), windows=False)  # a wildcard spans any character
def test_rules_match_names_as_fnmatch_does(
    case: tuple[list[str], list[str], str], windows: bool
) -> None:
    """The compiled patterns decide every name as one ``fnmatch`` per pattern would."""
    patterns, ignore, name = case
    with pytest.MonkeyPatch.context() as mp:
        if windows:  # fnmatch folds case and slashes through os.path.normcase there
            mp.setattr(os.path, "normcase", ntpath.normcase)
        rules = FilterRules(patterns=tuple(patterns), ignore=tuple(ignore))
        expected = not any(fnmatch.fnmatch(name, p) for p in ignore) and any(
            fnmatch.fnmatch(name, p) for p in patterns
        )
        assert rules.accepts(name) is expected


def test_nested_watch_folder_belongs_to_itself(tmp_path: Path) -> None:
    outer, inner = tmp_path / "outer", tmp_path / "outer" / "inner"
    inner.mkdir(parents=True)
    config = ClientConfig(watch_paths=[outer, inner], queue_path=tmp_path / "q", recursive=True)
    roots = build_roots(config)
    assert root_for(roots, inner / "f.json") == roots[1]
    assert root_for(roots, outer / "f.json") == roots[0]
    assert root_for(roots, outer / "Done" / "f.json") is None
    (inner / "f.json").write_text("x")
    assert list(scan_root(roots[0], FilterRules())) == []


# --- the watcher, with real files ------------------------------------------------------


def test_files_present_at_start_and_new_files_are_offered_once(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    watch = config.watch_dirs[0]
    (watch / "old.json").write_text('{"a": 1}')

    async def body() -> None:
        watcher = FileWatcher(config)
        await watcher.start()
        try:
            [old] = await collect(watcher, 1)
            assert old.path == watch / "old.json" and old.size == 8
            assert old.done_dir == watch / "Done" and old.error_dir == watch / "Error"
            landed = time.monotonic()
            (watch / "new.json").write_text('{"b": 2}')
            [new] = await collect(watcher, 1)
            latency = time.monotonic() - landed
            assert new.path.name == "new.json"
            assert latency < config.ready_after + 1.0, latency
            # claimed: neither is offered again, even after a rescan
            await only_the_canary_comes(watcher, watch)
            assert watcher.files_seen == 3  # old, new and the canary
        finally:
            await watcher.stop()

    run(body)


def test_slowly_written_file_is_offered_once_when_complete(tmp_path: Path) -> None:
    config = make_config(tmp_path, ready_after=0.5)
    path = config.watch_dirs[0] / "slow.json"
    chunks = [b"x" * 100] * 6

    def writer() -> None:
        with open(path, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                handle.flush()
                time.sleep(0.3)  # the scenario: a writer pausing between chunks

    async def body() -> None:
        watcher = FileWatcher(config)
        await watcher.start()
        try:
            thread = threading.Thread(target=writer)
            thread.start()
            [item] = await collect(watcher, 1)
            assert not thread.is_alive(), "offered while still being written"
            assert item.size == 600 == path.stat().st_size
            await only_the_canary_comes(watcher, path.parent)
        finally:
            await watcher.stop()
            thread.join()

    run(body)


def test_rescan_finds_files_whose_events_were_lost(tmp_path: Path) -> None:
    config = make_config(tmp_path, rescan_interval=0.5)

    async def body() -> None:
        watcher = FileWatcher(config, observer_factory=NoEventsObserver)
        await watcher.start()
        try:
            # the start-up scan is over: only a later rescan can find these files
            await async_wait_until(lambda: watcher.rescans >= 1, 15, message="first scan")
            for n in range(5):
                (config.watch_dirs[0] / f"f{n}.json").write_text("{}")
            got = await collect(watcher, 5)
            assert sorted(s.path.name for s in got) == [f"f{n}.json" for n in range(5)]
            assert watcher.rescans >= 2
        finally:
            await watcher.stop()

    run(body)


def test_recursive_watch_never_offers_done_or_error_files(tmp_path: Path) -> None:
    config = make_config(tmp_path, recursive=True, rescan_interval=0.3)
    watch = config.watch_dirs[0]

    async def body() -> None:
        watcher = FileWatcher(config)
        await watcher.start()
        try:
            for rel in ["Done/a.json", "Error/b.json", "sub/c.json"]:
                (watch / rel).parent.mkdir(parents=True, exist_ok=True)
                (watch / rel).write_text("{}")
            [item] = await collect(watcher, 1)
            assert item.path == watch / "sub" / "c.json"
            await only_the_canary_comes(watcher, watch)
        finally:
            await watcher.stop()

    run(body)


def test_marker_mode_waits_for_the_marker(tmp_path: Path) -> None:
    config = make_config(tmp_path, ready_marker=".done", ready_after=60.0)
    watch = config.watch_dirs[0]

    async def body() -> None:
        watcher = FileWatcher(config)
        await watcher.start()
        try:
            (watch / "a.json").write_text("{}")
            await only_the_canary_comes(watcher, watch, marker=".done")  # a.json: no marker yet
            (watch / "a.json.done").write_text("")
            [item] = await collect(watcher, 1)
            assert item.path.name == "a.json" and item.marker == watch / "a.json.done"
        finally:
            await watcher.stop()

    run(body)


def test_empty_file_is_handed_over_with_a_reason(tmp_path: Path) -> None:
    config = make_config(tmp_path, ready_after=0.1)

    async def body() -> None:
        watcher = FileWatcher(config, empty_grace=0.5)
        await watcher.start()
        try:
            (config.watch_dirs[0] / "empty.json").touch()
            [item] = await collect(watcher, 1)
            assert item.reject_reason and "empty" in item.reject_reason
        finally:
            await watcher.stop()

    run(body)


def test_release_lets_a_file_be_seen_again_and_skip_filter_holds_it_back(tmp_path: Path) -> None:
    config = make_config(tmp_path, ready_after=0.1, rescan_interval=0.3)
    skipped: set[Path] = set()

    async def body() -> None:
        watcher = FileWatcher(config, skip=lambda p, size, mtime: p in skipped)
        await watcher.start()
        try:
            path = config.watch_dirs[0] / "a.json"
            path.write_text("{}")
            [item] = await collect(watcher, 1)
            watcher.release(item.path)
            [again] = await collect(watcher, 1)  # still there: found by the next rescan
            assert again.path == path
            skipped.add(path)
            watcher.release(path)
            await only_the_canary_comes(watcher, path.parent)
        finally:
            await watcher.stop()

    run(body)


def test_pause_holds_files_back_until_resume(tmp_path: Path) -> None:
    config = make_config(tmp_path, ready_after=0.1)

    async def body() -> None:
        watcher = FileWatcher(config)
        await watcher.start()
        try:
            watcher.pause()
            (config.watch_dirs[0] / "a.json").write_text("{}")
            # Paused, the watcher shows no progress to wait for (no rescans, no
            # probes): a quiet second it is, 10 times its ready_after.
            assert await watcher.get_ready(1, timeout=1.0) == []
            watcher.resume()
            [item] = await collect(watcher, 1)
            assert item.path.name == "a.json"
        finally:
            await watcher.stop()

    run(body)


def test_a_dead_observer_is_rebuilt(tmp_path: Path) -> None:
    config = make_config(tmp_path, ready_after=0.1)

    async def body() -> None:
        watcher = FileWatcher(config, health_interval=0.2)
        await watcher.start()
        try:
            observer = watcher._observer
            assert observer is not None
            await asyncio.to_thread(observer.stop)  # as if its thread died
            await asyncio.to_thread(observer.join, 5)
            await async_wait_until(
                lambda: watcher.observer_restarts > 0, 15, message="the observer rebuilt"
            )
            assert watcher._observer is not observer and watcher._observer.is_alive()
            (config.watch_dirs[0] / "a.json").write_text("{}")
            [item] = await collect(watcher, 1)  # events work again
            assert item.path.name == "a.json"
        finally:
            await watcher.stop()

    run(body)


@pytest.mark.skipif(sys.platform == "win32", reason="folder links need privileges there")
def test_a_watch_folder_given_as_a_link_has_file_events(tmp_path: Path) -> None:
    """inotify watched the link itself, so such a folder waited for each rescan."""
    real = tmp_path / "real-in"
    real.mkdir()
    (tmp_path / "linked-in").symlink_to(real, target_is_directory=True)
    # no rescan within the test: only an event can find the file
    config = make_config(
        tmp_path, watch_paths=[tmp_path / "linked-in"], ready_after=0.1, rescan_interval=300.0
    )

    async def body() -> None:
        watcher = FileWatcher(config)
        await watcher.start()
        try:
            await async_wait_until(lambda: watcher.rescans >= 1, 15, message="first scan")
            (real / "a.json").write_text("{}")
            [item] = await collect(watcher, 1)
            assert item.path == tmp_path / "linked-in" / "a.json"
        finally:
            await watcher.stop()

    run(body)


def test_each_rescan_counts_the_files_parked_in_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path, rescan_interval=0.2)
    error = config.watch_dirs[0] / "Error"

    async def body() -> None:
        watcher = FileWatcher(config)
        assert watcher.parked is None  # not counted yet
        await watcher.start()
        try:
            await async_wait_until(lambda: watcher.parked == {error: 0}, 15, message="0")
            error.mkdir()
            (error / "a.csv").write_text("bad")
            (error / "a.csv.error.txt").write_text("no header")
            await async_wait_until(lambda: watcher.parked == {error: 1}, 15, message="1")
            watcher.pause()  # backpressure: no file is taken, parked ones still counted
            (error / "a.csv").unlink()
            await async_wait_until(lambda: watcher.parked == {error: 0}, 15, message="0 again")

            def refuse(folder: Path) -> int:
                raise PermissionError(13, "Permission denied", str(folder))

            monkeypatch.setattr(_post_actions, "count_parked", refuse)
            unreadable = [
                f"cannot count the files parked in {error} (Permission denied); "
                "make it readable for the service account"
            ]
            await async_wait_until(lambda: watcher.problems == unreadable, 15, message="warned")
            assert watcher.parked is None
        finally:
            await watcher.stop()

    run(body)


def test_an_error_path_that_is_no_path_does_not_stop_the_rescans(tmp_path: Path) -> None:
    """A NUL byte in error_path (the config takes it) made every rescan fail."""
    no_path = str(tmp_path / "Err\x00or")
    config = make_config(tmp_path, error_path=no_path)
    (config.watch_dirs[0] / "there-before.json").write_text("{}")

    async def body() -> None:
        watcher = FileWatcher(config)
        await watcher.start()
        try:
            [item] = await collect(watcher, 1)  # found by the first rescan
            assert item.path.name == "there-before.json"
            assert watcher.parked is None
            assert watcher.problems == [
                f"the Error folder {no_path!r} is not a usable path "
                "(embedded null byte); fix error_path"
            ]
        finally:
            await watcher.stop()

    run(body)


def test_an_observer_that_cannot_be_built_leaves_the_rescans(tmp_path: Path) -> None:
    """The per-user inotify limit (128 instances by default) must not stop a station."""
    config = make_config(tmp_path, ready_after=0.1, rescan_interval=0.3)
    builds: list[int] = []

    def factory() -> Any:
        builds.append(1)
        if len(builds) == 1:
            raise OSError(errno.EMFILE, "Too many open files")
        return build_observer()

    async def body() -> None:
        watcher = FileWatcher(config, health_interval=0.2, observer_factory=factory)
        await watcher.start()
        try:
            assert watcher.problems == [
                "file events unavailable (Too many open files)"
                + (" (raise the sysctl fs.inotify.max_user_instances)" if LINUX else "")
                + "; relying on rescans every 0.3 s"
            ]
            (config.watch_dirs[0] / "a.json").write_text("{}")
            [item] = await collect(watcher, 1)  # found by a rescan meanwhile
            assert item.path.name == "a.json"
            await async_wait_until(lambda: watcher.problems == [], 15, message="events again")
            assert len(builds) == 2
        finally:
            await watcher.stop()

    run(body)


def test_a_watch_folder_moved_away_and_made_again_is_watched_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Found by an adversarial review: `mv in in-old; mkdir in` left the events on the
    # old folder for good, and files waited for each rescan (300 s here: never).
    config = make_config(tmp_path, ready_after=0.1, rescan_interval=300.0)
    watch = config.watch_dirs[0]

    async def body() -> None:
        watcher = FileWatcher(config, health_interval=0.2)
        await watcher.start()
        try:
            await async_wait_until(lambda: watcher.rescans >= 1, 15, message="first scan")
            watch.rename(tmp_path / "in-old")
            watch.mkdir()
            await async_wait_until(
                lambda: watcher.observer_restarts > 0, 15, message="the observer rebuilt"
            )
            (watch / "a.json").write_text("{}")
            [item] = await collect(watcher, 1)
            assert item.path == watch / "a.json"
        finally:
            await watcher.stop()

    with caplog.at_level(logging.WARNING):
        run(body)
    assert f"watch folder {watch} was replaced" in caplog.text


class RecordingObserver(Observer):  # type: ignore[misc,valid-type]
    """The real observer, keeping the type of every event it delivers."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def schedule(self, event_handler: Any, path: str, **kwargs: Any) -> Any:
        seen = self.seen

        class Recording(FileSystemEventHandler):  # type: ignore[misc]
            def dispatch(self, event: FileSystemEvent) -> None:
                seen.append(event.event_type)
                event_handler.dispatch(event)

        return super().schedule(Recording(), path, **kwargs)


def test_reading_a_result_file_makes_no_events(tmp_path: Path) -> None:
    """The service reads each file several times; those reads must not wake the watcher."""
    config = make_config(tmp_path, ready_after=0.1)
    watch = config.watch_dirs[0]
    observers: list[RecordingObserver] = []

    def factory() -> RecordingObserver:
        observers.append(RecordingObserver())
        return observers[-1]

    async def body() -> None:
        watcher = FileWatcher(config, observer_factory=factory)
        await watcher.start()
        try:
            staged = tmp_path / "staged.json"
            staged.write_text("{}")
            os.replace(staged, watch / "moved-in.json")
            (watch / "written.json").write_text("{}")
            got = await collect(watcher, 2)
            for _ in range(20):
                for item in got:
                    item.path.read_bytes()
            await only_the_canary_comes(watcher, watch)
        finally:
            await watcher.stop()

    run(body)
    seen = set(observers[0].seen)
    assert "created" in seen, seen  # a file moved in from elsewhere is "created"
    if sys.platform == "linux":  # only inotify reports closes
        assert "closed" in seen, seen
    assert not seen & {"opened", "closed_no_write"}, seen


def test_a_new_file_under_a_claimed_name_is_taken_once_the_old_one_is_released(
    tmp_path: Path,
) -> None:
    # Found by an adversarial review: a tester re-using one name wrote the next result
    # while the last was still being moved to Done; its events were dropped, and it
    # waited for the next rescan (or was overwritten by the one after it: lost).
    config = make_config(tmp_path, rescan_interval=300.0)
    watch = tmp_path / "in"

    async def body() -> None:
        watcher = FileWatcher(config)
        await watcher.start()
        try:
            (watch / "Done").mkdir()
            (watch / "result.txt").write_text("first")
            (first,) = await collect(watcher, 1)
            first.path.rename(watch / "Done" / "result.txt")  # the intake's move
            (watch / "result.txt").write_text("second")  # the tester, at once
            (watch / "marker.txt").write_text("x")  # events come in order: once this is
            (marker,) = await collect(watcher, 1)  # ready, those of "second" were handled
            assert marker.path.name == "marker.txt"
            watcher.release(first.path)  # the batch is done only now
            (second,) = await collect(watcher, 1, timeout=15.0)
            assert second.path == watch / "result.txt"
            assert second.path.read_text() == "second"
        finally:
            await watcher.stop()

    run(body)


def test_missing_watch_folder_is_created_and_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Created, because a tester may start later; said, because it may be a typo."""
    (tmp_path / "there").mkdir()
    config = ClientConfig(
        watch_paths=[tmp_path / "later" / "in", tmp_path / "there"],
        queue_path=tmp_path / "q",
        ready_after=0.1,
    )

    async def body() -> None:
        watcher = FileWatcher(config)
        await watcher.start()
        try:
            created = tmp_path / "later" / "in"
            assert created.is_dir()
            # status shows it too, until a file arrives there
            assert watcher.problems == [
                f"watch folder {created} did not exist and was created; no file has arrived "
                "there yet (if the tester writes elsewhere, fix watch_paths)"
            ]
            (created / "a.json").write_text("{}")
            await async_wait_until(lambda: watcher.problems == [], 15, message="cleared")
        finally:
            await watcher.stop()

    with caplog.at_level(logging.WARNING):
        run(body)
    created = [r.getMessage() for r in caplog.records if "did not exist" in r.getMessage()]
    assert created == [
        f"watch folder {tmp_path / 'later' / 'in'} did not exist; created it "
        "(if the tester writes elsewhere, fix watch_paths)"
    ]


def test_idle_watcher_does_not_busy_wait(tmp_path: Path) -> None:
    config = make_config(tmp_path)

    async def body() -> None:
        watcher = FileWatcher(config)
        await watcher.start()
        try:
            await async_wait_until(lambda: watcher.rescans >= 1, 15, message="start-up scan")
            cpu0, rescans0 = time.process_time(), watcher.rescans
            await asyncio.sleep(2.0)  # the scenario: measure CPU over an idle spell
            used = time.process_time() - cpu0
            assert used < 0.1, f"idle watcher used {used:.3f} s CPU in 2 s"
            assert watcher.rescans == rescans0
        finally:
            await watcher.stop()

    run(body)


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_results_that_can_never_be_taken_are_noted_not_scanned(tmp_path: Path) -> None:
    config = make_config(tmp_path, file_patterns=["*.json"])
    watch = config.watch_dirs[0]
    for rel in ["batch-7/r1.json", "notes/readme.txt", "Done/old.json", "Error/bad.json"]:
        (watch / rel).parent.mkdir(parents=True, exist_ok=True)
        (watch / rel).write_text("{}")
    (watch / "gone.json").symlink_to(tmp_path / "nowhere.json")
    (watch / "gone.txt").symlink_to(tmp_path / "nowhere.txt")  # not a result name
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (watch / "linked").symlink_to(elsewhere, target_is_directory=True)
    [root] = build_roots(config)
    notes: dict[Path, str] = {}
    assert list(scan_root(root, FilterRules(patterns=("*.json",)), [], notes)) == []
    assert sorted(notes) == [watch / "batch-7", watch / "gone.json"], notes
    assert "'r1.json'" in notes[watch / "batch-7"] and "recursive" in notes[watch / "batch-7"]
    assert "does not exist" in notes[watch / "gone.json"]

    # Recursive: the sub-folder is scanned, and only the folder link is noted.
    [root] = build_roots(make_config(tmp_path, file_patterns=["*.json"], recursive=True))
    notes = {}
    found = list(scan_root(root, FilterRules(patterns=("*.json",)), [], notes))
    assert [p.name for p, _ in found] == ["r1.json"]
    assert sorted(notes) == [watch / "gone.json", watch / "linked", watch / "notes"]
    assert "watch_paths" in notes[watch / "linked"]
    assert "'readme.txt'" in notes[watch / "notes"]  # scanned now: named as no pattern takes


def test_files_no_pattern_takes_are_noted_by_folder(tmp_path: Path) -> None:
    """A dropped file that is never taken must not vanish from sight: each folder that
    holds some is noted (logged once while true), unless ignore_patterns explain them."""
    config = make_config(tmp_path, file_patterns=["*.csv", "*.xml"])
    watch = config.watch_dirs[0]
    for name in ["r1.csv", "station7.log", "RESULT_DE.CSV", "x.tmp", ".hidden", "r2.csv.done"]:
        (watch / name).write_text("x")
    [root] = build_roots(config)
    rules = FilterRules(patterns=("*.csv", "*.xml"), ignore=("*.tmp", ".*"), marker=".done")
    notes: dict[Path, str] = {}
    found = [p.name for p, _ in scan_root(root, rules, [], notes)]
    if os.name == "nt":  # patterns ignore case there: RESULT_DE.CSV is taken
        assert sorted(found) == ["RESULT_DE.CSV", "r1.csv"]
        return
    assert found == ["r1.csv"]
    [note] = notes.values()
    assert note.startswith(f"{watch}: 2 file(s) whose names match none of file_patterns")
    assert "(*.csv, *.xml)" in note and "ignore_patterns" in note
    assert "case-sensitive" not in rules.unmatched_note(watch, 1, "station7.log")
    assert "case-sensitive" in rules.unmatched_note(watch, 1, "RESULT_DE.CSV")
    notes.clear()
    list(scan_root(root, FilterRules(patterns=("*",)), [], notes))  # the default takes all
    assert notes == {}


def test_a_result_in_an_unwatched_sub_folder_is_logged_once_while_it_is_there(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_watcher_module, "NOTE_FORGOTTEN_AFTER", 1)  # gone once: forgotten
    config = make_config(tmp_path)
    batch = config.watch_dirs[0] / "batch-7"
    batch.mkdir()
    (batch / "r1.json").write_text("{}")

    async def body() -> None:
        watcher = FileWatcher(config)
        await watcher.start()
        try:
            with caplog.at_level(logging.WARNING, logger="pywats_client"):
                await rescanned(watcher)
                await rescanned(watcher)
                assert caplog.text.count("not taken, because recursive is false") == 1
                assert watcher.problems == []  # a note, not a station warning
                (batch / "r2.json").write_text("{}")  # another example: the same folder
                (batch / "r1.json").unlink()
                await rescanned(watcher)
                assert caplog.text.count("not taken, because recursive is false") == 1
                (batch / "r2.json").unlink()
                await rescanned(watcher)
                (batch / "r3.json").write_text("{}")
                await rescanned(watcher)
                assert caplog.text.count("not taken, because recursive is false") == 2
        finally:
            await watcher.stop()

    run(body)


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission semantics")
def test_unreadable_subfolder_is_reported_not_fatal(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    config = make_config(tmp_path, recursive=True)
    locked = config.watch_dirs[0] / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        errors: list[str] = []
        [root] = build_roots(config)
        assert list(scan_root(root, FilterRules(), errors)) == []
        assert errors and "locked" in errors[0]
    finally:
        locked.chmod(0o700)


# --- found in review -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "target"), [("done_path", "in"), ("error_path", "in"), ("done_path", "other")]
)
def test_done_or_error_folder_that_is_a_watch_folder_is_refused(
    tmp_path: Path, key: str, target: str
) -> None:
    # Sources "moved" there would be taken, converted and moved again, forever.
    from pywats_client.errors import ConfigError

    (tmp_path / "other").mkdir()
    config = make_config(
        tmp_path, watch_paths=[tmp_path / "in", tmp_path / "other"], **{key: tmp_path / target}
    )
    with pytest.raises(ConfigError) as caught:
        build_roots(config)
    assert caught.value.key == key and "watch folder" in str(caught.value)


def test_a_note_that_comes_and_goes_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A tester's temp name no pattern covers, caught by some rescans and not others,
    must not log a line each time it is caught (NOTE_FORGOTTEN_AFTER rescans away)."""
    config = make_config(tmp_path, file_patterns=["*.csv"])
    leftover = config.watch_dirs[0] / "run7.csv.inprogress"

    async def body() -> None:
        watcher = FileWatcher(config)
        await watcher.start()
        try:
            with caplog.at_level(logging.WARNING, logger="pywats_client"):
                for _ in range(3):
                    leftover.write_text("x")
                    await rescanned(watcher)
                    leftover.unlink()
                    await rescanned(watcher)
                assert caplog.text.count("match none of file_patterns") == 1
                for _ in range(file_watcher_module.NOTE_FORGOTTEN_AFTER):
                    await rescanned(watcher)
                leftover.write_text("x")
                await rescanned(watcher)
                assert caplog.text.count("match none of file_patterns") == 2
        finally:
            await watcher.stop()

    run(body)
