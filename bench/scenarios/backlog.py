"""Backlog: 100,000 queued reports drained by a real worker; its memory must stay flat.

One station under a real supervisor (``pywats-client supervise``) uploads to
the stand-in. In the same worker process:

1. warm-up: a few hundred files go end to end, so the HTTP client, the
   converters and the uploader have all run; then the worker's RSS is sampled
   with 0 reports pending;
2. uploads are paused through the control channel (``SupervisorControl.pause``)
   and 100,000 small reports are written into its queue: straight into the
   store's format (``Envelope``, ``encode_item``, ``make_name`` from
   ``pywats_client.queue``), **without fsync** (setup only: durability is not
   what is measured here), each renamed into ``pending/`` whole, then the
   queue's ``requeued.signal`` is touched so the worker rescans; RSS is sampled
   again once its heartbeat counts them all;
3. uploads resume: time until the server holds every report, the drain rate
   per window of the drain (does the cost per report grow with the backlog?),
   and the worker's RSS every 0.2 s (psutil) until the queue is empty; also
   the RSS of its upload helper (the pid its status names) while one runs.

RSS growth = the highest RSS seen with the backlog (paused or draining) - the
median RSS at 0 pending, of the worker: the process that holds the queue's
state. The helper holds no reports beyond those in flight; it is shown apart.
Every report must reach the server exactly once.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import psutil

from bench._context import Context
from bench._procs import BenchError, Server, Station, Supervise, poll, supervise, write_stations
from bench._reports import report_json, small_report
from bench._stats import Figure, Target
from pywats_client.control import SupervisorControl
from pywats_client.queue import Envelope, QueueStore
from pywats_client.queue._envelope import encode_item
from pywats_client.queue._names import make_name

NAME = "backlog"
GROWTH_LIMIT_MIB = 20.0
MIB = 2**20


class RssSampler:
    """The RSS of one process every ``interval`` s, in a thread, while in the ``with``.

    ``pid`` may be a function asked at each sample, for a process that comes
    and goes (the upload helper): no sample while it gives ``None``.
    """

    def __init__(self, pid: int | Callable[[], int | None], interval: float = 0.2) -> None:
        self._pid_of = pid if callable(pid) else (lambda: pid)
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            pid = self._pid_of()
            if pid is not None:
                with contextlib.suppress(psutil.NoSuchProcess):  # a helper that just ended
                    self.samples.append(psutil.Process(pid).memory_info().rss / MIB)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()


def fill_queue(queue_dir: Path, count: int) -> None:
    """``count`` pending reports in the store's own format; no fsync (setup only)."""
    store = QueueStore(queue_dir, maintenance=False)  # the layout; the worker owns the queue
    staging = queue_dir / "bench-staging"
    staging.mkdir()
    base = time.time_ns() - 10**12  # due a while ago, in this order
    names = []
    for n in range(count):
        report = small_report(f"BL{n:07d}")
        envelope = Envelope(
            id=report["id"],
            source_name=f"BL{n:07d}.json",
            source_sha256="0" * 64,
            converter="bench",
            created_at="2026-01-01T00:00:00Z",
        )
        name = make_name(base + n, report["id"])
        (staging / name).write_bytes(encode_item(envelope, report))
        names.append(name)
    for name in names:
        os.replace(staging / name, store.pending_dir / name)
    staging.rmdir()
    store.requeue_marker.touch()


def _pending(sup: Supervise, name: str) -> int | None:
    snapshot = sup.records().get(name, {}).get("snapshot") or {}
    pending = snapshot.get("pending")
    return None if pending is None else int(pending)


def _helper_pid(sup: Supervise, name: str) -> int | None:
    snapshot = sup.records().get(name, {}).get("snapshot") or {}
    pid = snapshot.get("upload_helper_pid")
    return None if pid is None else int(pid)


def _window_rates(times: list[float], start: float, window: float) -> list[float]:
    """Reports accepted per second in each full ``window`` of the drain."""
    buckets: dict[int, int] = {}
    for t in times:
        buckets[int((t - start) // window)] = buckets.get(int((t - start) // window), 0) + 1
    last = int((max(times) - start) // window)
    full = [buckets.get(i, 0) / window for i in range(last)]  # the last window is partial
    return full or [len(times) / max(max(times) - start, 1e-9)]


def _warm_up(server: Server, station: Station, count: int) -> None:
    for n in range(count):
        (station.watch / f"warm-{n:04d}.json").write_bytes(report_json(f"warm-{n:04d}"))
    server.wait_for(count, timeout=120, what="the warm-up files at the server")


def run(ctx: Context) -> list[Figure]:
    count = ctx.size(100_000, quick=2_000)
    server = ctx.server()
    folder = ctx.folder("backlog")
    registry, (station,) = write_stations(folder, 1, server, config={"ready_after": 0.0})
    control = SupervisorControl(registry)
    with supervise(registry) as sup:
        sup.wait_running([station.name])
        pid = sup.worker_pids()[station.name]
        _warm_up(server, station, ctx.size(300, quick=30))
        poll(lambda: _pending(sup, station.name) == 0, 60, "the warm-up queue to empty")
        with RssSampler(pid) as idle:
            time.sleep(ctx.size(3.0, quick=1.0))

        if not control.pause(station.name).ok:
            raise BenchError("the supervisor did not pause the station's uploads")
        began = time.monotonic()
        fill_queue(station.queue, count)
        ctx.log(f"{count:,} reports written into the queue in {time.monotonic() - began:.1f} s")
        with RssSampler(pid) as full:
            poll(
                lambda: _pending(sup, station.name) == count,
                120,
                f"the worker to count {count:,} pending",
                interval=0.2,
            )
            time.sleep(ctx.size(3.0, quick=1.0))

        server.reset()
        with (
            RssSampler(pid) as draining,
            RssSampler(lambda: _helper_pid(sup, station.name)) as helper,
        ):
            start = time.time()
            if not control.resume(station.name).ok:
                raise BenchError("the supervisor did not resume the station's uploads")
            server.wait_for(count, timeout=600, what=f"the {count:,} backlog reports")
        if sup.worker_pids().get(station.name) != pid:
            raise BenchError("the worker was restarted during the drain: RSS is not one process's")
    times = list(server.accept_times().values())
    server.check_exactly_once(count)
    ctx.discard(folder)

    drain = max(times) - start
    rates = _window_rates(times, start, ctx.size(10.0, quick=1.0))
    at_zero = statistics.median(idle.samples)
    peak = max(full.samples + draining.samples)
    ctx.log(
        f"drained {count:,} in {drain:.1f} s; RSS {at_zero:.1f} MiB at 0 pending, "
        f"{max(full.samples):.1f} MiB with {count:,} pending, {max(draining.samples):.1f} MiB "
        f"peak while draining"
    )
    label = f"{count:,}"
    helper_figures = [
        Figure(NAME, "upload helper RSS while draining", "MiB", helper.samples, note="samples")
    ]
    return [
        Figure(NAME, f"drain {label} queued reports, time", "s", [drain]),
        Figure(NAME, "drain rate", "/s", rates, note=f"per {ctx.size(10, quick=1)} s window"),
        Figure(NAME, "worker RSS, 0 pending", "MiB", idle.samples, note="samples"),
        Figure(NAME, f"worker RSS, {label} pending (paused)", "MiB", full.samples, note="samples"),
        Figure(NAME, "worker RSS while draining", "MiB", draining.samples, note="samples"),
        *(helper_figures if helper.samples else []),
        Figure(
            NAME,
            f"RSS growth, 0 -> {label} pending (peak - median at 0)",
            "MiB",
            [peak - at_zero],
            Target("<=", GROWTH_LIMIT_MIB),
        ),
    ]
