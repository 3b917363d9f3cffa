"""Queue throughput: durable enqueue vs the disk's raw fsync+rename rate, and upload rate.

Three measurements on the same disk, repeated ``--runs`` times (ratios are
taken within each run, so both sides see the same machine load):

* **raw**: write a 4 KiB temp file, fsync it, rename it into a folder, fsync
  the folder - the least any crash-safe one-file-per-item queue can do.
* **enqueue**: ``QueueStore.enqueue`` of reports of about 4 KiB, one report per
  call (what the intake does for a one-report file) and ``--batch`` per call
  (one folder fsync for the whole batch).
* **upload**: a queue of ``--uploads`` reports drained by ``QueueService``
  with 5 concurrent uploads into the local stand-in server (a separate
  process, committing every report to SQLite before it answers 200), and, as
  the ceiling to compare with, the same reports sent by 5 bare httpx loops.

With ``--backlog N`` it also measures a queue of N pending reports: time from
``QueueService.start()`` to the first report accepted by the server, and the
Python memory the store holds while it works through the backlog.

    .venv/bin/python bench/queue.py                     # 5 runs
    .venv/bin/python bench/queue.py --runs 3 --backlog 100000
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name
# would shadow the standard library's ``queue`` module: take the folder out.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import psutil  # noqa: E402

from pywats_client._fsutil import fsync_dir  # noqa: E402
from pywats_client.core import ClientConfig  # noqa: E402
from pywats_client.queue import NewReport, QueueStore  # noqa: E402
from pywats_client.queue._envelope import Envelope, encode_item  # noqa: E402
from pywats_client.queue._names import make_name  # noqa: E402
from pywats_client.services import ConnectionService, QueueService, WATSApiClient  # noqa: E402
from pywats_client.standin import StandinProcess, generate_token  # noqa: E402

PAYLOAD_BYTES = 4096


def make_report(n: int, size: int = PAYLOAD_BYTES) -> dict[str, Any]:
    """A valid WSJF report padded with numeric steps to about ``size`` bytes of JSON."""
    steps = [
        {
            "stepType": "ET_NLT",
            "name": f"V{i}",
            "status": "P",
            "numericMeas": [{"value": 5.0 + i / 1000, "unit": "V", "compOp": "LOG"}],
        }
        for i in range(max(1, (size - 400) // 95))
    ]
    return {
        "type": "T",
        "id": str(uuid.uuid4()),
        "pn": "PSU-200",
        "sn": f"SN{n:08d}",
        "rev": "B",
        "result": "P",
        "machineName": "bench-st1",
        "start": "2026-03-02T09:15:00+01:00",
        "root": {"stepType": "SequenceCall", "name": "Main", "status": "P", "steps": steps},
    }


def new_reports(count: int, size: int = PAYLOAD_BYTES) -> list[NewReport]:
    return [
        NewReport(make_report(n, size), f"unit{n}.json", "0" * 64, "bench") for n in range(count)
    ]


def disk_rates(folder: Path, count: int, batch: int) -> dict[str, float]:
    """Items/s of the raw crash-safe write and of ``enqueue``, interleaved chunk by chunk.

    Raw = write a 4 KiB temp file, fsync, rename into a folder, fsync the folder.
    Interleaving gives all three the same share of whatever else the machine does.
    """
    target, tmp = folder / "raw", folder / "raw-tmp"
    target.mkdir()
    tmp.mkdir()
    single = QueueStore(folder / "queue-single")
    batched = QueueStore(folder / "queue-batched")
    items = new_reports(2 * count)
    data = os.urandom(PAYLOAD_BYTES)
    spent = {"raw": 0.0, "one": 0.0, "batch": 0.0}
    for start in range(0, count, batch):
        began = time.perf_counter()
        for n in range(start, min(start + batch, count)):
            temp = tmp / f"{n}.tmp"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, target / f"{n}.json")
            fsync_dir(target)
        middle = time.perf_counter()
        for item in items[start : min(start + batch, count)]:
            single.enqueue([item])
        late = time.perf_counter()
        batched.enqueue(items[count + start : count + min(start + batch, count)])
        spent["raw"] += middle - began
        spent["one"] += late - middle
        spent["batch"] += time.perf_counter() - late
    return {key: count / seconds for key, seconds in spent.items()}


def bench_config(folder: Path, server: StandinProcess, token: str) -> ClientConfig:
    return ClientConfig(
        instance_name="bench",
        service_address=server.url,
        api_token=token,
        queue_path=folder,
        max_concurrent_uploads=5,
    )


async def drain(
    config: ClientConfig, expected: int, probe: Callable[[], int] | None = None
) -> tuple[float, float, int]:
    """Run the uploader until ``expected`` reports are accepted.

    Returns (seconds, seconds to the first accepted report, highest ``probe()``
    value; ``probe``, e.g. the RSS, is sampled about 20 times a second).
    """
    api = WATSApiClient(config)
    conn = ConnectionService(config, api)
    queue = QueueService(config, api, connection=conn)
    await conn.start()
    started = time.perf_counter()
    await queue.start()
    first = None
    ticks = peak = 0
    while queue.uploaded < expected:
        if first is None and queue.uploaded:
            first = time.perf_counter() - started
        ticks += 1
        if probe is not None and ticks % 5 == 0:
            peak = max(peak, probe())
        await asyncio.sleep(0.01)  # coarse on purpose: polling costs the uploader CPU
    took = time.perf_counter() - started
    await queue.stop()
    await conn.stop()
    await api.aclose()
    return took, first if first is not None else took, peak


def stored(server: StandinProcess, token: str) -> int:
    answer = httpx.get(
        f"{server.url}/standin/stats",
        headers={"Authorization": f"Basic {token}"},
        trust_env=False,
    )
    return int(answer.json()["distinct_reports"])


def reset(server: StandinProcess, token: str) -> None:
    httpx.post(
        f"{server.url}/standin/reset",
        headers={"Authorization": f"Basic {token}"},
        trust_env=False,
    ).raise_for_status()


def upload_rate(folder: Path, count: int, size: int, server: StandinProcess, token: str) -> float:
    reset(server, token)
    queue_dir = folder / "upload-queue"
    store = QueueStore(queue_dir)
    items = new_reports(count, size)
    for start in range(0, count, 500):
        store.enqueue(items[start : start + 500])
    took, _, _ = asyncio.run(drain(bench_config(queue_dir, server, token), count))
    assert stored(server, token) == count, "the server must hold every report exactly once"
    return count / took


def bare_httpx_rate(count: int, size: int, server: StandinProcess, token: str) -> float:
    """The same reports sent by 5 bare httpx loops: the ceiling the uploader is compared to."""
    reset(server, token)
    bodies = [json.dumps(make_report(n, size)).encode() for n in range(count)]
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    async def send_all() -> float:
        pending = iter(bodies)
        async with httpx.AsyncClient(headers=headers, trust_env=False) as client:

            async def worker() -> None:
                for body in pending:
                    answer = await client.post(f"{server.url}/api/Report/WSJF", content=body)
                    answer.raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(5)))
            return time.perf_counter() - started

    took = asyncio.run(send_all())
    assert stored(server, token) == count
    return count / took


def fill_backlog(queue_dir: Path, count: int) -> None:
    """Write ``count`` pending files quickly (no fsync: only the reading side is measured)."""
    store = QueueStore(queue_dir)
    envelope = Envelope(
        id="x", source_name="s", source_sha256="0", converter="bench", created_at="2026-01-01Z"
    )
    base = time.time_ns() - 10**12
    for n in range(count):
        report = make_report(n, 1024)
        data = encode_item(envelope.updated(id=report["id"]), report)
        (store.pending_dir / make_name(base + n, report["id"])).write_bytes(data)


def backlog_run(folder: Path, count: int, server: StandinProcess, token: str) -> None:
    queue_dir = folder / "backlog"
    print(f"backlog: writing {count:,} pending reports ...", flush=True)
    fill_backlog(queue_dir, count)

    tracemalloc.start()  # the store alone: open, count, first claims
    store = QueueStore(queue_dir, maintenance=False)
    began = time.perf_counter()
    store.claim_many(5)
    opened = time.perf_counter() - began
    _, store_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del store

    reset(server, token)
    sample = min(count, 5000)
    process = psutil.Process()
    rss_before = process.memory_info().rss
    took, first, rss_peak = asyncio.run(
        drain(bench_config(queue_dir, server, token), sample, lambda: process.memory_info().rss)
    )
    print(
        f"backlog: {count:,} pending: store open + first claim {opened:.2f} s, "
        f"{store_peak / 1e6:.1f} MB Python heap at peak (tracemalloc); with the uploader: "
        f"first report accepted {first:.2f} s after start, {sample:,} uploaded at "
        f"{sample / took:,.0f}/s, process RSS {rss_before / 1e6:.0f} MB before, "
        f"{rss_peak / 1e6:.0f} MB peak"
    )


def summary(name: str, values: list[float], unit: str) -> str:
    median = statistics.median(values)
    spread = (max(values) - min(values)) / median * 100 if median else 0.0
    return (
        f"{name}: median {median:,.0f}{unit} (min {min(values):,.0f}, max {max(values):,.0f}, "
        f"spread {spread:.0f}% of median)"
    )


def ratio_summary(name: str, values: list[float]) -> str:
    return (
        f"{name}: median {statistics.median(values):.0%} "
        f"(min {min(values):.0%}, max {max(values):.0%})"
    )


def one_run(
    folder: Path, args: argparse.Namespace, server: StandinProcess, token: str
) -> dict[str, float]:
    """One round of every measurement, back to back on the same disk."""
    folder.mkdir()
    values = disk_rates(folder, args.items, args.batch)
    print(f"    raw write+fsync+rename+dir fsync: {values['raw']:,.0f}/s", flush=True)
    print(f"    enqueue, 1 report per call: {values['one']:,.0f}/s", flush=True)
    print(f"    enqueue, {args.batch} per call: {values['batch']:,.0f}/s", flush=True)
    values["upload"] = upload_rate(folder, args.uploads, args.upload_size, server, token)
    values["bare"] = bare_httpx_rate(args.uploads, args.upload_size, server, token)
    print(
        f"    upload, 5 concurrent, {args.upload_size}-byte reports: {values['upload']:,.0f}/s "
        f"(bare httpx, same reports: {values['bare']:,.0f}/s)",
        flush=True,
    )
    shutil.rmtree(folder)
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--items", type=int, default=1000, help="items per disk measurement")
    parser.add_argument("--batch", type=int, default=50, help="reports per batched enqueue")
    parser.add_argument("--uploads", type=int, default=3000, help="reports per upload run")
    parser.add_argument(
        "--upload-size", type=int, default=500, help="JSON bytes per uploaded report (about)"
    )
    parser.add_argument("--backlog", type=int, default=0, help="also measure N pending (0: no)")
    parser.add_argument("--dir", type=Path, default=None, help="where the queues live")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="pywats-bench-queue-", dir=args.dir))
    token = generate_token()
    server = StandinProcess(root / "standin", token).start()
    print(
        f"queue bench in {root} ({os.statvfs(root).f_bsize if hasattr(os, 'statvfs') else '?'}"
        f"-byte blocks); stand-in pid {server.pid}; {args.runs} runs; Python "
        f"{sys.version.split()[0]}",
        flush=True,
    )
    results: dict[str, list[float]] = {k: [] for k in ("raw", "one", "batch", "upload", "bare")}
    try:
        for run in range(args.runs):
            print(f"  run {run + 1}:", flush=True)
            for key, value in one_run(root / f"run{run}", args, server, token).items():
                results[key].append(value)
        if args.backlog:
            backlog_run(root, args.backlog, server, token)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    one = [o / r for o, r in zip(results["one"], results["raw"], strict=True)]
    batch = [b / r for b, r in zip(results["batch"], results["raw"], strict=True)]
    print(summary("raw fsync+rename", results["raw"], "/s"))
    print(summary("enqueue (1 per call)", results["one"], "/s"))
    print(summary(f"enqueue ({args.batch} per call)", results["batch"], "/s"))
    print(ratio_summary("enqueue/raw (1 per call)", one))
    print(ratio_summary(f"enqueue/raw ({args.batch} per call)", batch))
    print(summary("upload, 5 concurrent, to the stand-in", results["upload"], " reports/s"))
    print(summary("bare httpx, 5 concurrent, same reports", results["bare"], " reports/s"))
    print(
        ratio_summary(
            "uploader/bare httpx",
            [u / b for u, b in zip(results["upload"], results["bare"], strict=True)],
        )
    )
    print(
        ratio_summary(
            "upload/raw fsync+rename",
            [u / r for u, r in zip(results["upload"], results["raw"], strict=True)],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
