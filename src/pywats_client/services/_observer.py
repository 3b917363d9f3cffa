"""The watchdog observer the watcher builds: on Linux, one that hears only of files
arriving in a folder watched without its sub-folders, not of files leaving it.

Every converted source leaves its watch folder (moved to Done or deleted), so a
plain inotify watch reports each file twice. watchdog holds each "moved out"
event back for half a second to pair it with a "moved in", and for each file
that arrives by rename it searches everything it has not yet passed on, twice.
Under a burst of files renamed into a folder that list grows to thousands: the
searches cost the worker about 0.15 ms of CPU per file, a tenth of its total.

A watcher needs to hear only of files arriving or changing: one that leaves is
found gone when the watcher next looks, and the rescan is the truth. So for a
folder watched without its sub-folders inotify is not asked for "moved out",
and with nothing to pair the search is skipped; a file renamed within the
folder still arrives under its new name. Watches that include sub-folders keep
watchdog's full behaviour: it needs both halves of a folder's move to keep its
sub-folder watches right. Where this watchdog's inotify internals differ, the
plain observer is used (correct, only slower).
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
            log.debug("plain inotify observer (%s: %s)", type(exc).__name__, exc)
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
                log.debug("plain inotify watch (%s: %s)", type(exc).__name__, exc)
                super().on_thread_start()

    class ArrivalsObserver(InotifyObserver):
        def __init__(self) -> None:
            super().__init__()
            self._emitter_class = ArrivalsEmitter

    return ArrivalsObserver()
