"""The lean loop: a station's durable steps with nothing else, as a yardstick.

It does, in this process, what one station must do for each file and no more:
read the file, parse and re-serialise the JSON (the least a conversion does),
write the report to a temp file, fsync it, rename it into ``pending/`` (the
station's own ``atomic_write_bytes``); per batch of :data:`BATCH`, fsync
``pending/``, move the sources to ``done/`` and fsync both folders; then
:data:`UPLOADERS` threads, each with its own keep-alive ``httpx.Client``,
POST each report to the stand-in and delete it (``pending/`` fsynced at the
end). No folder watching, readiness check, converter choice, hash, envelope,
journal, status or log line.

What the station adds on top of this is the price of its features. What the
loop itself reaches is what one Python process doing only these steps with
httpx gets from this machine: the part of a gap that is the machine's.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from bench._procs import BenchError, Server, cpu_seconds
from pywats_client._fsutil import atomic_write_bytes, fsync_dir, fsync_dirs
from pywats_client.services.api_client import SUBMIT_PATH

__all__ = ["BATCH", "UPLOADERS", "lean_loop"]

#: Files per folder fsync: the station's intake batch size.
BATCH = 64
#: Upload threads: the station's default ``max_concurrent_uploads``.
UPLOADERS = 5


def lean_loop(server: Server, sources: list[Path], folder: Path) -> tuple[float, float]:
    """Run ``sources`` through the lean loop into ``server``.

    Returns files/s (first file read -> last report accepted by the server) and
    this process's CPU (user + system) in ms per file.
    """
    pending, done = folder / "lean-pending", folder / "lean-done"
    pending.mkdir()
    done.mkdir()
    handoff: queue.Queue[Path | None] = queue.Queue()
    failures: list[BaseException] = []
    headers = {"Content-Type": "application/json", "Authorization": f"Basic {server.token}"}
    url = httpx.URL(server.url + SUBMIT_PATH)

    def intake() -> None:
        try:
            _intake(sources, pending, done, handoff)
        finally:
            for _ in range(UPLOADERS):
                handoff.put(None)  # the uploaders stop after the last report

    def upload() -> None:
        with httpx.Client(timeout=60, trust_env=False) as client:
            while (report := handoff.get()) is not None:
                client.post(url, content=report.read_bytes(), headers=headers).raise_for_status()
                report.unlink()

    def guarded(work: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # raised below, after every thread stopped
                failures.append(exc)

        return threading.Thread(target=run)

    me = psutil.Process()
    cpu = cpu_seconds(me)
    began = time.time()
    threads = [guarded(intake)] + [guarded(upload) for _ in range(UPLOADERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fsync_dir(pending)
    cpu = cpu_seconds(me) - cpu
    if failures:
        raise BenchError(f"the lean loop failed: {failures[0]!r}") from failures[0]
    last = max(server.accept_times().values())
    return len(sources) / (last - began), cpu / len(sources) * 1000


def _intake(
    sources: list[Path], pending: Path, done: Path, handoff: queue.Queue[Path | None]
) -> None:
    batch: list[tuple[Path, Path]] = []
    for n, source in enumerate(sources):
        body = json.dumps(json.loads(source.read_bytes()), separators=(",", ":"))
        queued = pending / f"{n}.json"
        atomic_write_bytes(queued, body.encode(), sync_dir=False)  # the station's write
        batch.append((source, queued))
        if len(batch) == BATCH or n == len(sources) - 1:
            fsync_dir(pending)
            for src, _ in batch:
                os.replace(src, done / src.name)
            fsync_dirs([done, *(src.parent for src, _ in batch)])
            for _, report in batch:
                handoff.put(report)
            batch.clear()
