"""The stand-in's SQLite store: upserts, durability, group commit, orderly close."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pywats_client.standin import ReportRecord, ReportStore
from pywats_client.standin._store import DB_NAME, StoreClosedError


def record(report_id: str, result: str = "P", body: str = "{}") -> ReportRecord:
    return ReportRecord(id=report_id, type="T", pn="PN-1", sn="SN-1", result=result, body=body)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReportStore]:
    store = ReportStore(tmp_path)
    store.open()
    yield store
    store.close()


def test_put_list_get_and_resubmit(store: ReportStore) -> None:
    async def scenario() -> None:
        await store.put(record("a", body='{"id": "a"}'))
        await store.put(record("b"))
        await store.put(record("a", result="F", body='{"id": "a", "result": "F"}'))
        assert await store.list_reports() == [
            {
                "id": "a",
                "type": "T",
                "pn": "PN-1",
                "sn": "SN-1",
                "result": "F",
                "times_received": 2,
            },
            {
                "id": "b",
                "type": "T",
                "pn": "PN-1",
                "sn": "SN-1",
                "result": "P",
                "times_received": 1,
            },
        ]
        assert await store.get_body("a") == '{"id": "a", "result": "F"}'
        assert await store.get_body("missing") is None
        assert await store.counts() == (2, 3)
        await store.clear()
        assert await store.counts() == (0, 0)

    asyncio.run(scenario())


def test_answered_put_is_committed_in_wal_mode(store: ReportStore, tmp_path: Path) -> None:
    asyncio.run(store.put(record("x")))
    # A second connection sees it at once: the put returned only after COMMIT.
    with sqlite3.connect(tmp_path / DB_NAME) as other:
        assert other.execute("SELECT id FROM reports").fetchall() == [("x",)]
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_reports_survive_reopening(tmp_path: Path) -> None:
    first = ReportStore(tmp_path)
    first.open()
    asyncio.run(first.put(record("kept")))
    first.close()
    second = ReportStore(tmp_path)
    second.open()
    try:
        assert asyncio.run(second.counts()) == (1, 1)
    finally:
        second.close()


def test_concurrent_puts_share_commits(store: ReportStore) -> None:
    async def scenario() -> None:
        await asyncio.gather(*(store.put(record(f"r{i}")) for i in range(500)))
        assert await store.counts() == (500, 500)

    asyncio.run(scenario())
    # 500 puts queued at once must not cost 500 commits (one fsync each).
    assert store.commits < 100
    assert store.committed_ops == 501


def test_calls_after_close_fail_clearly(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    store.open()
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreClosedError):
        asyncio.run(store.counts())


def test_close_finishes_queued_work_first(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    store.open()

    async def scenario() -> None:
        pending = asyncio.gather(*(store.put(record(f"r{i}")) for i in range(50)))
        await asyncio.sleep(0)  # one loop turn, no wait: each put task queues its job first
        await asyncio.to_thread(store.close)
        await asyncio.wait_for(pending, timeout=10)

    asyncio.run(scenario())
    reopened = ReportStore(tmp_path)
    reopened.open()
    try:
        assert asyncio.run(reopened.counts()) == (50, 50)
    finally:
        reopened.close()
