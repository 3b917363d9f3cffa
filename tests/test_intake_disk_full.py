"""Found by the torture suite: a full disk under the queue must hold intake, not crash it.

With the queue's file system full, the intake's crash journal (``intake/batch-*``)
could not be written either; the OSError stopped the intake loop and the worker
restarted every second or so for as long as the disk stayed full. Now the batch
is released, the sources stay where they are, and intake tries again.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pywats_client.errors import DiskFullError
from pywats_client.queue import NewReport, QueueStore
from pywats_client.services import _journal
from tests.test_intake import drop, files_in, make_config, run, running


def test_journal_disk_full_holds_intake_then_it_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path)
    real_append = _journal._append_line
    full = {"on": True, "hits": 0}

    def append(path: Path, record: dict[str, Any], *, create: bool = False) -> None:
        if full["on"] and create:
            full["hits"] += 1
            path.write_bytes(b'{"files": [')  # what a write cut off by ENOSPC leaves
            raise OSError(errno.ENOSPC, "No space left on device")
        real_append(path, record, create=create)

    monkeypatch.setattr(_journal, "_append_line", append)
    for n in range(3):
        drop(config, f"r{n}.json")

    async def body() -> None:
        async with running(config, enqueue_retry_delay=0.2) as h:
            await h.until(lambda: full["hits"] >= 2)  # retried, not crashed
            assert h.intake.running
            assert files_in(h.watch) == ["r0.json", "r1.json", "r2.json"]
            assert list((config.queue_dir / "intake").glob("batch-*")) == []
            assert "No space left" in (h.intake.stats.last_error or "")
            full["on"] = False
            await h.until(lambda: h.intake.stats.converted == 3)
            assert len(h.pending_ids()) == 3
            assert files_in(h.watch) == ["Done/r0.json", "Done/r1.json", "Done/r2.json"]

    run(body)


def test_a_nearly_full_disk_takes_smaller_batches_until_everything_is_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by an operator review: with room for a few reports, the intake retried
    # the same batch of 18 (all or nothing) for as long as the disk stayed that full.
    config = make_config(tmp_path)
    store = QueueStore(config.queue_dir)
    sizes: list[int] = []
    real_enqueue = store.enqueue

    def enqueue(items: Sequence[NewReport]) -> None:
        sizes.append(len(items))
        if len(items) > 2:
            raise DiskFullError(f"disk full while queueing {len(items)} report(s)")
        real_enqueue(items)

    monkeypatch.setattr(store, "enqueue", enqueue)
    for n in range(10):
        drop(config, f"r{n}.json")

    async def body() -> None:
        async with running(config, store=store, enqueue_retry_delay=0.05) as h:
            await h.until(lambda: h.intake.stats.converted == 10, timeout=60)
            assert len(h.pending_ids()) == 10
            assert files_in(h.watch) == [f"Done/r{n}.json" for n in range(10)]

    run(body)
    assert sizes[0] == 10 and sum(size for size in sizes if size <= 2) == 10  # each once


def test_a_queue_folder_that_refuses_writes_says_whose_access_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path)
    store = QueueStore(config.queue_dir)
    refused = {"on": True}
    real_enqueue = store.enqueue

    def enqueue(items: Sequence[NewReport]) -> None:
        if refused["on"]:
            raise PermissionError(1, "Operation not permitted", str(config.queue_dir / "pending"))
        real_enqueue(items)

    monkeypatch.setattr(store, "enqueue", enqueue)
    drop(config, "r0.json")

    async def body() -> None:
        async with running(config, store=store, enqueue_retry_delay=0.05) as h:
            await h.until(lambda: "write access" in (h.intake.stats.last_error or ""))
            assert str(config.queue_dir) in (h.intake.stats.last_error or "")
            assert files_in(h.watch) == ["r0.json"]
            refused["on"] = False
            await h.until(lambda: h.intake.stats.converted == 1)

    run(body)
