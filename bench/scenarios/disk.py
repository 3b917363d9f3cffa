"""The disk's limit for durable queueing, and how close ``QueueStore.enqueue`` gets to it.

* **raw**: write a 4 KiB temp file, fsync it, rename it into a folder, fsync
  the folder: the least any crash-safe one-file-per-item queue can do.
* **enqueue**: ``QueueStore.enqueue`` of reports of about 4 KiB (with their
  envelope), one report per call (what intake does for a one-report file) and
  50 per call (one folder fsync for the batch).

The three are interleaved chunk by chunk (50 items of each in turn), so each
sees the same share of whatever else the machine does, and the ratios are
taken within each repeat.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench._context import Context
from bench._reports import sized_report
from bench._stats import Figure, Target
from pywats_client._fsutil import fsync_dir
from pywats_client.queue import NewReport, QueueStore

NAME = "disk"
PAYLOAD_BYTES = 4096
BATCH = 50


def raw_writes(folder: Path, count: int, first: int = 0) -> float:
    """Seconds for ``count`` crash-safe 4 KiB writes into ``folder/raw``."""
    target, tmp = folder / "raw", folder / "raw-tmp"
    target.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    data = os.urandom(PAYLOAD_BYTES)
    began = time.perf_counter()
    for n in range(first, first + count):
        temp = tmp / f"{n}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target / f"{n}.json")
        fsync_dir(target)
    return time.perf_counter() - began


def raw_rate(folder: Path, count: int) -> float:
    """Crash-safe 4 KiB writes per second on the disk of ``folder``, right now."""
    return count / raw_writes(folder, count)


def _new_reports(count: int) -> list[NewReport]:
    return [
        NewReport(sized_report(f"SN{n:08d}", PAYLOAD_BYTES), f"unit{n}.json", "0" * 64, "bench")
        for n in range(count)
    ]


def _one_repeat(folder: Path, count: int) -> dict[str, float]:
    single = QueueStore(folder / "queue-single")
    batched = QueueStore(folder / "queue-batched")
    items = _new_reports(2 * count)
    spent = {"raw": 0.0, "one": 0.0, "batch": 0.0}
    for start in range(0, count, BATCH):
        end = min(start + BATCH, count)
        spent["raw"] += raw_writes(folder, end - start, first=start)
        began = time.perf_counter()
        for item in items[start:end]:
            single.enqueue([item])
        middle = time.perf_counter()
        batched.enqueue(items[count + start : count + end])
        spent["one"] += middle - began
        spent["batch"] += time.perf_counter() - middle
    return {key: count / seconds for key, seconds in spent.items()}


def run(ctx: Context) -> list[Figure]:
    count = ctx.size(1000, quick=100)
    results: dict[str, list[float]] = {"raw": [], "one": [], "batch": []}
    for r in range(ctx.repeats(5)):
        folder = ctx.folder("disk")
        rates = _one_repeat(folder, count)
        ctx.discard(folder)
        for key, value in rates.items():
            results[key].append(value)
        ctx.log(
            f"repeat {r + 1}: raw {rates['raw']:,.0f}/s, enqueue 1/call {rates['one']:,.0f}/s, "
            f"{BATCH}/call {rates['batch']:,.0f}/s"
        )
    raw = results["raw"]
    return [
        Figure(NAME, "raw limit: write+fsync+rename+dir-fsync, 4 KiB", "/s", raw),
        Figure(NAME, "durable enqueue, 1 report per call", "/s", results["one"]),
        Figure(NAME, f"durable enqueue, {BATCH} reports per call", "/s", results["batch"]),
        Figure(
            NAME,
            "enqueue (1 per call) / raw limit",
            "ratio",
            [o / r for o, r in zip(results["one"], raw, strict=True)],
            Target(">=", 0.5),
        ),
        Figure(
            NAME,
            f"enqueue ({BATCH} per call) / raw limit",
            "ratio",
            [b / r for b, r in zip(results["batch"], raw, strict=True)],
        ),
    ]
