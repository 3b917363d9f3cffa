"""The watchdog observer the watcher builds: on Linux, one that does not look for a
"moved out" partner for each file moved in.

watchdog pairs inotify's "moved out" and "moved in" events into one move: for
each file that arrives by rename it searches every event it has read but not
yet passed on, twice. Under a burst of files renamed into a watch folder, its
reading thread runs ahead of the thread that passes events on (the two trade
the interpreter lock), so that list holds thousands: the searches cost the
worker about 0.15 ms of CPU per file at 3,000-4,000 files, more in bigger bursts.

A watcher needs to hear of files arriving or changing, not of files leaving: a
file that goes is found gone when next looked at, and the rescan is the truth.
So a folder watched without its sub-folders does not ask inotify for "moved
out", and with nothing to pair the search is skipped; a file renamed within the
folder arrives under its new name, as created. Watches that include sub-folders
keep watchdog's full behaviour: it needs both halves of a folder's move to keep
its sub-folder watches right. Where this watchdog's inotify internals differ,
the plain observer is used (correct, only slower).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from watchdog.observers import Observer

__all__ = ["build_observer"]

log = logging.getLogger(__name__)


def build_observer() -> Any:
    """A new, not yet started observer for :class:`FileWatcher`."""
    if sys.platform.startswith("linux"):
        try:
            return _arrivals_observer()
        except (ImportError, AttributeError, TypeError) as exc:  # another watchdog
            log.info(
                "file events through watchdog's plain observer (%s: %s)", type(exc).__name__, exc
            )
    return Observer()


def _arrivals_observer() -> Any:
    # defined on first use: watchdog's inotify modules import only on Linux
    from watchdog.observers.inotify import InotifyEmitter, InotifyObserver, InotifyWatchGroup
    from watchdog.observers.inotify_c import InotifyConstants, Mask
    from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper

    class UnpairedGrouper(InotifyMoveEventGrouper):
        """Passes every event straight on: there is no "moved out" to pair with."""

        def _group_moved_to_event(self, to_event: Any) -> Any:
            return to_event

        def get_queued_moved_from_event(self, cookie: int) -> Any:
            return None

    class ArrivalsWatchGroup(InotifyWatchGroup):
        def __post_init__(self) -> None:
            # before the watch is added: no event may reach the grouper it replaces
            self._move_event_grouper = UnpairedGrouper()
            super().__post_init__()

    class ArrivalsEmitter(InotifyEmitter):
        def on_thread_start(self) -> None:
            if self.watch.is_recursive:
                super().on_thread_start()
                return
            mask = Mask(self.get_event_mask_from_filter() & ~InotifyConstants.IN_MOVED_FROM)
            try:
                self._inotify = ArrivalsWatchGroup(
                    self._inotify_fd,
                    os.fsencode(self.watch.path),
                    is_recursive=False,
                    event_mask=mask,
                    follow_symlink=self.watch.follow_symlink,
                )
            except (AttributeError, TypeError) as exc:  # another watchdog
                log.info(
                    "file events through watchdog's plain watch (%s: %s)", type(exc).__name__, exc
                )
                super().on_thread_start()

    class ArrivalsObserver(InotifyObserver):
        def __init__(self) -> None:
            super().__init__()
            self._emitter_class = ArrivalsEmitter

    return ArrivalsObserver()
