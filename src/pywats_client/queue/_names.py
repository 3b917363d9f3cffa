"""Queue file names: the name alone gives the FIFO order and the due time.

A pending file is named ``<due_ns:020d>-<key>.json``: ``due_ns`` is the wall
time (ns since the epoch) from which the report may be uploaded - its enqueue
time for a new report, its next attempt for one waiting to retry - and ``key``
is the report id (or a digest of it when the id is not safe in a file name).
Sorting names sorts by due time, so the smallest names are the next to send
and the queue never has to open a file to know what comes next.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time

__all__ = ["SUFFIX", "due_ns_of", "key_for_id", "key_of", "make_name", "next_due_ns"]

SUFFIX = ".json"
_DUE_DIGITS = 20
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_NAME = re.compile(rf"\d{{{_DUE_DIGITS}}}-[A-Za-z0-9_-]{{1,80}}{re.escape(SUFFIX)}")

_STEP_BACK_NS = 1_000_000_000
_clock_lock = threading.Lock()
_last_ns = 0


def key_for_id(report_id: str) -> str:
    """The part of a file name that stands for ``report_id``."""
    if _SAFE_ID.fullmatch(report_id):
        return report_id.lower()
    return "h" + hashlib.sha256(report_id.encode("utf-8")).hexdigest()[:40]


def make_name(due_ns: int, report_id: str) -> str:
    return f"{max(due_ns, 0):0{_DUE_DIGITS}d}-{key_for_id(report_id)}{SUFFIX}"


def due_ns_of(name: str) -> int | None:
    """Due time encoded in ``name``; ``None`` if it is not a queue file name."""
    if not _NAME.fullmatch(name):
        return None
    return int(name[:_DUE_DIGITS])


def key_of(name: str) -> str:
    return name[_DUE_DIGITS + 1 : -len(SUFFIX)]


def next_due_ns() -> int:
    """Current wall time in ns, increasing within this process (keeps FIFO order).

    Ties and tiny clock wobbles are bumped by 1 ns; a clock stepped back by more
    than a second (NTP correcting a fast clock) is followed, so reports queued
    after the correction are not scheduled into the old, wrong future.
    """
    global _last_ns
    with _clock_lock:
        now = time.time_ns()
        _last_ns = now if now > _last_ns or _last_ns - now > _STEP_BACK_NS else _last_ns + 1
        return _last_ns
