"""Stages: where one station's CPU goes, and the best rate this machine allows.

The end-to-end rate of one instance is bounded by CPU, not by the disk. This
scenario measures the two halves of a station apart, each in a real worker
under a real supervisor, so that bound is a measured figure rather than a
guess. Two identical stations, A and B, both with uploads held
(``SupervisorControl.pause``); each repeat drops two bursts of files:

1. intake only: the first burst is dropped on A, and the time and A's CPU
   until every report is durably in ``pending/`` is intake's cost (watch,
   convert, enqueue, post-action);
2. both halves at once, in two processes: A's uploads resume while the second
   burst is dropped on B. Each worker does one half of one station's work, at
   the same time, on the same cores, as a station split into an intake process
   and an upload process would. The slower half's rate is what such a split
   could reach here; its ratio to the raw disk limit is taken as ``e2e`` takes
   it (a sample of ``RAW_SAMPLE`` writes on the same disk just before);
3. upload only: B's uploads resume, and the time and B's CPU until the
   stand-in holds every report is the uploader's cost; the stand-in's own CPU
   per report is taken over the same window (it shares this machine's cores).

CPU is a station's: its worker's and its upload helper's (a child process that
"auto" starts once uploads run at 20/s or more), started and ended included.

CPU ceiling = cores x 1000 / (intake + upload + stand-in ms per file), from
steps 1 and 3: the rate at which every core would be busy at these costs per
file, even with intake and upload in separate processes. The costs themselves
move with the layout (larger batches lower them, GIL contention raises them),
so it is the ceiling of one station as it is, not of every possible
arrangement; step 2 measures the arrangement with two processes instead of
computing it.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench._context import Context
from bench._procs import (
    BenchError,
    Server,
    Station,
    cpu_seconds,
    poll,
    stage_burst,
    station_cpu_seconds,
    supervise,
    write_stations,
)
from bench._reports import report_json
from bench._stats import Figure
from bench.scenarios.disk import raw_rate
from bench.scenarios.e2e import CONFIG, RAW_SAMPLE
from pywats_client.control import SupervisorControl
from pywats_client.queue._names import due_ns_of

NAME = "stages"


def _queued(pending_dir: Path) -> int:
    """Reports in ``pending/`` (complete files only: temp files have other names)."""
    with os.scandir(pending_dir) as entries:
        return sum(1 for e in entries if due_ns_of(e.name) is not None)


def _drop(staged: list[Path], station: Station) -> None:
    for path in staged:
        os.replace(path, station.watch / path.name)


def _hold(control: SupervisorControl, station: Station) -> None:
    if not control.pause(station.name).ok:
        raise BenchError(f"the supervisor did not pause the uploads of {station.name}")


def _release(control: SupervisorControl, station: Station) -> None:
    if not control.resume(station.name).ok:
        raise BenchError(f"the supervisor did not resume the uploads of {station.name}")


def _wait_queued(station: Station, total: int) -> None:
    pending_dir = station.queue / "pending"
    poll(
        lambda: _queued(pending_dir) >= total or None,
        120 + total / 20,
        f"{total} reports queued by {station.name}",
        interval=0.05,
    )


def _wait_empty(station: Station) -> None:
    pending_dir = station.queue / "pending"
    poll(lambda: _queued(pending_dir) == 0 or None, 60, f"an empty queue at {station.name}")


@dataclass(frozen=True)
class _Halves:
    """Steps 1 and 3: rates (/s) and CPU (ms per file) of intake and upload apart."""

    intake_rate: float
    intake_cpu: float
    upload_rate: float
    upload_cpu: float
    server_cpu: float

    def ceiling(self, cores: int) -> float:
        return cores * 1000 / (self.intake_cpu + self.upload_cpu + self.server_cpu)


@dataclass(frozen=True)
class _AtOnce:
    """Step 2: each half's rate (/s) and CPU (ms per file), in its own process."""

    intake_rate: float
    intake_cpu: float
    upload_rate: float
    upload_cpu: float
    raw: float  # the raw disk limit (/s) just before, measured as e2e does

    @property
    def split_rate(self) -> float:
        """A burst is through a split station when its slower half is."""
        return min(self.intake_rate, self.upload_rate)


def _repeat(
    ctx: Context,
    server: Server,
    stations: tuple[Station, Station],
    control: SupervisorControl,
    workers: tuple[psutil.Process, psutil.Process],
    total: int,
    tag: str,
) -> tuple[_Halves, _AtOnce]:
    (a, b), (worker_a, worker_b) = stations, workers
    folder = ctx.folder(f"stages-{tag}")
    first = stage_burst(folder / "first", total, f"{tag}a")
    second = stage_burst(folder / "second", total, f"{tag}b")
    for station in stations:
        _hold(control, station)
        _wait_empty(station)
    server.reset()
    standin = psutil.Process(server.pid)

    # 1. intake only, at A
    cpu, began = station_cpu_seconds(worker_a), time.monotonic()
    _drop(first, a)
    _wait_queued(a, total)
    intake_rate = total / (time.monotonic() - began)
    intake_cpu = (station_cpu_seconds(worker_a) - cpu) * 1000 / total

    # 2. at once: A uploads what it queued while B takes the second burst
    raw = raw_rate(folder, RAW_SAMPLE)
    cpu_a, cpu_b = station_cpu_seconds(worker_a), station_cpu_seconds(worker_b)
    intake_began = time.time()
    _drop(second, b)
    with ThreadPoolExecutor(1) as pool:  # a resume returns once confirmed, uploads run before
        upload_began = time.time()
        resumed = pool.submit(_release, control, a)
        _wait_queued(b, total)
        intake_seconds = time.time() - intake_began
        resumed.result()
    server.wait_for(total, timeout=120 + total / 20, what=f"{a.name}'s {total} reports")
    at_once = _AtOnce(
        intake_rate=total / intake_seconds,
        intake_cpu=(station_cpu_seconds(worker_b) - cpu_b) * 1000 / total,
        upload_rate=total / (max(server.accept_times().values()) - upload_began),
        upload_cpu=(station_cpu_seconds(worker_a) - cpu_a) * 1000 / total,
        raw=raw,
    )
    server.check_exactly_once(total)

    # 3. upload only, at B
    server.reset()
    cpu, server_cpu, began = station_cpu_seconds(worker_b), cpu_seconds(standin), time.time()
    _release(control, b)
    server.wait_for(total, timeout=120 + total / 20, what=f"{b.name}'s {total} reports")
    halves = _Halves(
        intake_rate,
        intake_cpu,
        upload_rate=total / (max(server.accept_times().values()) - began),
        upload_cpu=(station_cpu_seconds(worker_b) - cpu) * 1000 / total,
        server_cpu=(cpu_seconds(standin) - server_cpu) * 1000 / total,
    )
    server.check_exactly_once(total)
    ctx.discard(folder)
    return halves, at_once


def run(ctx: Context) -> list[Figure]:
    total = ctx.size(2000, quick=100)
    cores = psutil.cpu_count() or 1
    server = ctx.server()
    registry, (a, b) = write_stations(ctx.folder("stages"), 2, server, config=CONFIG)
    control = SupervisorControl(registry)
    repeats: list[_Halves] = []
    at_once: list[_AtOnce] = []
    with supervise(registry) as sup:
        sup.wait_running([a.name, b.name])
        for station in (a, b):
            (station.watch / "warm-up.json").write_bytes(report_json(f"warm-up-{station.name}"))
        server.wait_for(2, timeout=120, what="the warm-up files at the server")
        pids = sup.worker_pids()
        workers = (psutil.Process(pids[a.name]), psutil.Process(pids[b.name]))
        for r in range(ctx.repeats(3)):
            h, t = _repeat(ctx, server, (a, b), control, workers, total, f"s{r}")
            repeats.append(h)
            at_once.append(t)
            ctx.log(
                f"repeat {r + 1}: intake {h.intake_rate:,.0f}/s at {h.intake_cpu:.2f} ms/file, "
                f"upload {h.upload_rate:,.0f}/s at {h.upload_cpu:.2f} ms/report, "
                f"stand-in {h.server_cpu:.2f} ms/report "
                f"-> ceiling {h.ceiling(cores):,.0f}/s on {cores} cores; at once in two "
                f"processes: intake {t.intake_rate:,.0f}/s at {t.intake_cpu:.2f} ms/file, "
                f"upload {t.upload_rate:,.0f}/s at {t.upload_cpu:.2f} ms/report -> a split "
                f"station {t.split_rate:,.0f}/s (raw limit just before: {t.raw:,.0f}/s)"
            )
        if sup.worker_pids() != pids:
            raise BenchError("a worker was restarted: its CPU is not one process's")
    rows: list[tuple[str, str, list[float]]] = [
        ("intake only (uploads paused): files -> queued", "/s", [h.intake_rate for h in repeats]),
        ("intake only: station CPU per file", "ms", [h.intake_cpu for h in repeats]),
        ("upload only: queued -> accepted", "/s", [h.upload_rate for h in repeats]),
        ("upload only: station CPU per report", "ms", [h.upload_cpu for h in repeats]),
        ("stand-in CPU per report (same cores)", "ms", [h.server_cpu for h in repeats]),
        (
            f"CPU ceiling on {cores} cores: {cores} x 1000 / (intake + upload + stand-in)",
            "/s",
            [h.ceiling(cores) for h in repeats],
        ),
        ("at once, two processes: intake files -> queued", "/s", [t.intake_rate for t in at_once]),
        ("at once: intake CPU per file", "ms", [t.intake_cpu for t in at_once]),
        (
            "at once, two processes: upload queued -> accepted",
            "/s",
            [t.upload_rate for t in at_once],
        ),
        ("at once: upload CPU per report", "ms", [t.upload_cpu for t in at_once]),
        (
            "split station (intake, upload in 2 processes): slower half",
            "/s",
            [t.split_rate for t in at_once],
        ),
        (
            "split station / raw limit (sampled as in e2e)",
            "ratio",
            [t.split_rate / t.raw for t in at_once],
        ),
    ]
    return [Figure(NAME, name, unit, values) for name, unit, values in rows]
