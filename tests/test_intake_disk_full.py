"""Found by the torture suite: a full disk under the queue must hold intake, not crash it.

With the queue's file system full, the intake's crash journal (``intake/batch-*``)
could not be written either; the OSError stopped the intake loop and the worker
restarted every second or so for as long as the disk stayed full. Now the batch
is released, the sources stay where they are, and intake tries again.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

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
