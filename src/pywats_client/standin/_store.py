"""Durable report storage for the stand-in: SQLite in WAL mode, one writer thread.

Every operation runs on the one database thread, in arrival order, so a read
always sees the writes that were answered before it. Writes use group commit:
the thread takes everything queued while the previous commit was running and
commits it in one transaction (one fsync), then answers all of those callers.
A submit is answered only after its commit returned, so a 200 from the
stand-in means the report is on disk.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["DB_NAME", "ReportRecord", "ReportStore", "StoreClosedError"]

T = TypeVar("T")

DB_NAME = "standin.sqlite3"
#: Upper bound of operations in one transaction, so one commit never grows without limit.
MAX_BATCH = 2048

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    pn TEXT NOT NULL,
    sn TEXT NOT NULL,
    result TEXT NOT NULL,
    body TEXT NOT NULL,
    times_received INTEGER NOT NULL,
    first_received REAL NOT NULL,
    last_received REAL NOT NULL
)
"""

_UPSERT = """
INSERT INTO reports (id, type, pn, sn, result, body, times_received, first_received, last_received)
VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    type = excluded.type, pn = excluded.pn, sn = excluded.sn, result = excluded.result,
    body = excluded.body, times_received = reports.times_received + 1,
    last_received = excluded.last_received
"""


class StoreClosedError(RuntimeError):
    """The store was closed (the server is shutting down)."""


@dataclass(frozen=True)
class ReportRecord:
    """One accepted report: its header fields and the WSJF text as received."""

    id: str
    type: str
    pn: str
    sn: str
    result: str
    body: str


_Op = Callable[[sqlite3.Connection], Any]
_Job = tuple[_Op, "asyncio.Future[Any]", asyncio.AbstractEventLoop]
_Answer = tuple["asyncio.Future[Any]", Any, "BaseException | None"]
_STOP = object()


class ReportStore:
    """Reports stored in ``<data_dir>/standin.sqlite3``; async methods, sync thread inside."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / DB_NAME
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        #: Number of commits and of operations committed (to see group commit work).
        self.commits = 0
        self.committed_ops = 0

    # --- lifecycle ---------------------------------------------------------------

    def open(self) -> None:
        """Create or open the database and start the writer thread (blocking, quick)."""
        connection = self._connect()
        self._thread = threading.Thread(
            target=self._run, args=(connection,), name="standin-store", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Finish queued operations, then stop the thread and close the database."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._jobs.put(_STOP)
            self._thread.join()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            # FULL: every commit fsyncs the WAL, so a committed report survives power loss.
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute(_SCHEMA)
        except BaseException:
            connection.close()
            raise
        return connection

    # --- operations ----------------------------------------------------------------

    async def put(self, record: ReportRecord) -> None:
        """Store (or replace) a report; returns once it is committed."""
        now = time.time()
        params = (
            record.id,
            record.type,
            record.pn,
            record.sn,
            record.result,
            record.body,
            now,
            now,
        )

        def op(db: sqlite3.Connection) -> None:
            db.execute(_UPSERT, params)

        await self._call(op)

    async def get_body(self, report_id: str) -> str | None:
        """The stored WSJF text of ``report_id``, or ``None``."""

        def op(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT body FROM reports WHERE id = ?", (report_id,)).fetchone()
            return None if row is None else str(row[0])

        return await self._call(op)

    async def list_reports(self) -> list[dict[str, Any]]:
        """Every stored report's header and ``times_received``, oldest first."""

        def op(db: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = db.execute(
                "SELECT id, type, pn, sn, result, times_received FROM reports ORDER BY rowid"
            ).fetchall()
            keys = ("id", "type", "pn", "sn", "result", "times_received")
            return [dict(zip(keys, row, strict=True)) for row in rows]

        return await self._call(op)

    async def counts(self) -> tuple[int, int]:
        """(distinct reports, total receptions) over everything stored."""

        def op(db: sqlite3.Connection) -> tuple[int, int]:
            row = db.execute("SELECT COUNT(*), COALESCE(SUM(times_received), 0) FROM reports")
            distinct, total = row.fetchone()
            return int(distinct), int(total)

        return await self._call(op)

    async def clear(self) -> None:
        """Delete every stored report."""

        def op(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM reports")

        await self._call(op)

    async def _call(self, op: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed or self._thread is None:
            raise StoreClosedError("the report store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((op, future, loop))
        return await future

    # --- the database thread -----------------------------------------------------------

    def _run(self, db: sqlite3.Connection) -> None:
        try:
            stopping = False
            while not stopping:
                batch: list[_Job] = []
                item = self._jobs.get()
                while True:
                    if item is _STOP:
                        stopping = True
                    else:
                        batch.append(item)  # type: ignore[arg-type]
                    if len(batch) >= MAX_BATCH:
                        break
                    try:
                        item = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    self._commit(db, batch)
        finally:
            db.close()
            self._fail_leftovers()

    def _fail_leftovers(self) -> None:
        """Answer jobs that raced with :meth:`close` instead of leaving them waiting."""
        leftovers: list[_Job] = []
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                leftovers.append(item)  # type: ignore[arg-type]
        error: BaseException = StoreClosedError("the report store is closed")
        for _op, future, loop in leftovers:
            answer: list[_Answer] = [(future, None, error)]
            try:
                loop.call_soon_threadsafe(_deliver, answer)
            except RuntimeError:
                pass

    def _commit(self, db: sqlite3.Connection, batch: list[_Job]) -> None:
        """Run ``batch`` in one transaction; answer every caller after the commit."""
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for op, _future, _loop in batch:
                try:
                    outcomes.append((op(db), None))
                except sqlite3.Error as exc:
                    outcomes.append((None, exc))
            db.execute("COMMIT")
            self.commits += 1
            self.committed_ops += len(batch)
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            outcomes = [(None, exc)] * len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[_Answer]] = {}
        for (_op, future, loop), (result, error) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, result, error))
        for loop, answers in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, answers)
            except RuntimeError:
                pass  # that event loop is gone: nobody is waiting any more


def _deliver(answers: list[_Answer]) -> None:
    for future, result, error in answers:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
