"""The watcher's observer: on Linux it hears files arriving, not leaving (non-recursive)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from watchdog.events import FileDeletedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from pywats_client.services import _observer
from pywats_client.services._observer import build_observer
from pywats_client.services.file_watcher import _EVENT_FILTER
from tests.helpers import wait_until

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the arrivals-only observer is inotify's"
)


class _Recorder(FileSystemEventHandler):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[tuple[str, str, str]] = []
        self.observer: Any = None

    def on_any_event(self, event: FileSystemEvent) -> None:
        with self._lock:
            self.events.append(
                (event.event_type, os.fsdecode(event.src_path), os.fsdecode(event.dest_path))
            )

    def names(self) -> list[tuple[str, str, str]]:
        """Events as (type, source name, destination name) for files, in order."""
        with self._lock:
            return [
                (kind, Path(src).name, Path(dest).name if dest else "")
                for kind, src, dest in self.events
            ]

    def wait_for(self, name: str) -> list[tuple[str, str, str]]:
        """The events up to the first one naming ``name`` (a barrier: events keep order)."""

        def up_to_name() -> list[tuple[str, str, str]] | None:
            events = self.names()
            for n, (_, src, dest) in enumerate(events):
                if name in (src, dest):
                    return events[: n + 1]
            return None

        return wait_until(up_to_name, 10, message=f"an event for {name}")


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, Path, Any]]:
    """Yield (watch, outside, start): ``start(recursive)`` watches ``watch``."""
    watch, outside = tmp_path / "watch", tmp_path / "outside"
    watch.mkdir()
    outside.mkdir()
    observer = build_observer()
    recorder = _Recorder()

    def start(
        recursive: bool, event_filter: list[type[FileSystemEvent]] = _EVENT_FILTER
    ) -> _Recorder:
        observer.schedule(recorder, str(watch), recursive=recursive, event_filter=event_filter)
        observer.start()
        recorder.observer = observer
        return recorder

    yield watch, outside, start
    observer.stop()  # also the inotify thread an observer starts when it is built
    if observer.is_alive():
        observer.join(5)


@linux_only
def test_files_renamed_out_of_a_folder_are_not_reported(watched: tuple[Path, Path, Any]) -> None:
    watch, outside, start = watched
    (watch / "taken.csv").write_text("done")
    recorder = start(False, [*_EVENT_FILTER, FileDeletedEvent])  # even when asked

    os.replace(watch / "taken.csv", outside / "taken.csv")  # someone renames it away
    (outside / "arrived.csv").write_text("new")
    os.replace(outside / "arrived.csv", watch / "arrived.csv")  # a tester's atomic drop

    # a plain inotify observer reports the departure first (as deleted, 0.5 s late)
    assert recorder.wait_for("arrived.csv") == [("created", "arrived.csv", "")]


def test_files_deleted_from_a_folder_are_not_reported(watched: tuple[Path, Path, Any]) -> None:
    """As the post action ``delete`` does to every converted source."""
    watch, outside, start = watched
    (watch / "converted.csv").write_text("done")
    recorder = start(False)

    (watch / "converted.csv").unlink()
    (outside / "arrived.csv").write_text("new")
    os.replace(outside / "arrived.csv", watch / "arrived.csv")

    assert recorder.wait_for("arrived.csv") == [("created", "arrived.csv", "")]


@linux_only
def test_a_rename_within_the_folder_arrives_under_its_new_name(
    watched: tuple[Path, Path, Any],
) -> None:
    watch, _, start = watched
    (watch / "result.tmp").write_text("written")
    recorder = start(False)

    os.replace(watch / "result.tmp", watch / "result.csv")

    assert recorder.wait_for("result.csv") == [("created", "result.csv", "")]


@linux_only  # Windows reports a move between folders as removed + added
def test_watches_with_sub_folders_keep_moves_whole(watched: tuple[Path, Path, Any]) -> None:
    watch, _, start = watched
    (watch / "sub").mkdir()
    (watch / "result.csv").write_text("written")
    recorder = start(True)

    os.replace(watch / "result.csv", watch / "sub" / "result.csv")

    assert ("moved", "result.csv", "result.csv") in recorder.wait_for("result.csv")


@linux_only
def test_arrivals_are_passed_on_without_searching_held_events(
    watched: tuple[Path, Path, Any],
) -> None:
    """The cost this observer exists to save; fails if watchdog's internals moved."""
    from watchdog.observers.inotify_c import InotifyConstants

    *_, start = watched
    recorder = start(False)
    (emitter,) = recorder.observer.emitters
    group = emitter._inotify  # watchdog internals, on purpose
    assert not group.event_mask & InotifyConstants.IN_MOVED_FROM
    assert type(group._move_event_grouper).__name__ == "UnpairedGrouper"


def test_another_watchdog_falls_back_to_the_plain_observer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def internals_moved() -> Any:
        raise ImportError("cannot import name 'InotifyWatchGroup'")

    monkeypatch.setattr(_observer, "_arrivals_observer", internals_moved)
    observer = build_observer()
    try:
        assert type(observer) is Observer
    finally:
        observer.stop()
