"""Queue bugs the torture suite found (docs/reliability.md, "Findings"), kept as regressions.

Both were reported to the queue's owner with these reproducers and fixed in
``pywats_client.queue.store``: a report queued while the wall clock ran fast
is sent once the clock is corrected, and a file quarantined while the disk is
full gets its reason file once there is space again.
"""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Any

import pytest

from pywats_client._fsutil import atomic_write_text
from pywats_client.queue import NewReport, QueueStore
from pywats_client.queue import store as store_module
from tests.e2e._queue_common import make_report


def new(n: int) -> NewReport:
    return NewReport(make_report(n), f"unit{n}.json", f"{n:064x}", "WATS WSJF")


def test_reports_queued_before_a_clock_correction_are_still_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The station's clock ran an hour fast, then NTP stepped it back."""
    store = QueueStore(tmp_path / "queue")
    real_time, real_time_ns = time.time, time.time_ns
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + 3600 * 10**9)
    store.enqueue([new(1)])
    monkeypatch.setattr(time, "time", real_time)
    monkeypatch.setattr(time, "time_ns", real_time_ns)
    store.enqueue([new(2)])  # queued after the correction, in the same process
    claimed = store.claim_many(2)
    # Before the fix nothing was due for an hour (both names carried a due time an hour ahead).
    assert sorted(item.id for item in claimed) == sorted(make_report(n)["id"] for n in (1, 2))


def test_a_file_quarantined_on_a_full_disk_gets_its_reason_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = QueueStore(tmp_path / "queue")
    store.enqueue([new(1)])
    corrupt = store.pending_dir / f"{1:020d}-{'c' * 32}.json"
    corrupt.write_bytes(b'{"envelope": {"id": "')

    def disk_full(path: Path, text: str, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "atomic_write_text", disk_full)
    while (item := store.claim()) is not None:
        store.complete(item)
    assert (store.quarantine_dir / corrupt.name).exists()
    monkeypatch.setattr(store_module, "atomic_write_text", atomic_write_text)  # space is back
    store.enqueue([new(2)])
    for item in store.claim_many(5):
        store.complete(item)
    store.flush()
    store.counts()
    # Before the fix the reason existed only in the worker's log.
    assert (store.quarantine_dir / f"{corrupt.name}.reason.txt").exists()
