"""Stages: where one station's CPU goes, and the best rate this machine allows.

The end-to-end rate of one instance is bounded by CPU, not by the disk. This
scenario measures the two halves of a station apart, in one real worker under a
real supervisor, so that bound is a measured figure rather than a guess:

1. intake only: uploads are held (``SupervisorControl.pause``), a burst of files
   is dropped, and the time and worker CPU until every report is durably in
   ``pending/`` is intake's cost (watch, convert, enqueue, post-action);
2. upload only: uploads resume and the time and worker CPU until the stand-in
   holds every report is the uploader's cost; the stand-in's own CPU per
   report is taken over the same window (it shares this machine's cores).

CPU ceiling = cores x 1000 / (intake + upload + stand-in ms per file): the rate
at which every core would be busy at these costs per file, even with intake and
upload in separate processes. The costs themselves move with the layout (larger
batches lower them, GIL contention raises them), so it is the ceiling of one
station as it is, not of every possible arrangement.
"""

from __future__ import annotations

import os
import time
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
    stage_files,
    supervise,
    write_stations,
)
from bench._reports import report_json
from bench._stats import Figure
from bench.scenarios.e2e import CONFIG
from pywats_client.control import SupervisorControl
from pywats_client.queue._names import due_ns_of

NAME = "stages"


def _queued(pending_dir: Path) -> int:
    """Reports in ``pending/`` (complete files only: temp files have other names)."""
    with os.scandir(pending_dir) as entries:
        return sum(1 for e in entries if due_ns_of(e.name) is not None)


@dataclass(frozen=True)
class _Halves:
    """One repeat: rates (/s) and CPU (ms per file) of intake and upload apart."""

    intake_rate: float
    intake_cpu: float
    upload_rate: float
    upload_cpu: float
    server_cpu: float

    def ceiling(self, cores: int) -> float:
        return cores * 1000 / (self.intake_cpu + self.upload_cpu + self.server_cpu)


def _measure(
    ctx: Context,
    server: Server,
    station: Station,
    control: SupervisorControl,
    worker: psutil.Process,
    total: int,
    tag: str,
) -> _Halves:
    folder = ctx.folder(f"stages-{tag}")
    staged = stage_files(
        folder / "staging",
        [(f"{tag}-{i:06d}.json", report_json(f"{tag}-{i:06d}")) for i in range(total)],
    )
    pending_dir = station.queue / "pending"
    if not control.pause(station.name).ok:
        raise BenchError("the supervisor did not pause the station's uploads")
    poll(lambda: _queued(pending_dir) == 0 or None, 60, "an empty queue before the burst")
    server.reset()
    standin = psutil.Process(server.pid)

    cpu, began = cpu_seconds(worker), time.monotonic()
    for path in staged:
        os.replace(path, station.watch / path.name)
    poll(
        lambda: _queued(pending_dir) >= total or None,
        120 + total / 20,
        f"{total} reports queued",
        interval=0.05,
    )
    intake_rate = total / (time.monotonic() - began)
    intake_cpu = (cpu_seconds(worker) - cpu) * 1000 / total

    cpu, server_cpu, began = cpu_seconds(worker), cpu_seconds(standin), time.time()
    if not control.resume(station.name).ok:
        raise BenchError("the supervisor did not resume the station's uploads")
    server.wait_for(total, timeout=120 + total / 20, what=f"{total} queued reports")
    halves = _Halves(
        intake_rate,
        intake_cpu,
        upload_rate=total / (max(server.accept_times().values()) - began),
        upload_cpu=(cpu_seconds(worker) - cpu) * 1000 / total,
        server_cpu=(cpu_seconds(standin) - server_cpu) * 1000 / total,
    )
    server.check_exactly_once(total)
    ctx.discard(folder)
    return halves


def run(ctx: Context) -> list[Figure]:
    total = ctx.size(2000, quick=100)
    cores = psutil.cpu_count() or 1
    server = ctx.server()
    registry, (station,) = write_stations(ctx.folder("stages"), 1, server, config=CONFIG)
    control = SupervisorControl(registry)
    repeats: list[_Halves] = []
    with supervise(registry) as sup:
        sup.wait_running([station.name])
        (station.watch / "warm-up.json").write_bytes(report_json("warm-up"))
        server.wait_for(1, timeout=120, what="the warm-up file at the server")
        worker = psutil.Process(sup.worker_pids()[station.name])
        for r in range(ctx.repeats(3)):
            h = _measure(ctx, server, station, control, worker, total, f"s{r}")
            repeats.append(h)
            ctx.log(
                f"repeat {r + 1}: intake {h.intake_rate:,.0f}/s at {h.intake_cpu:.2f} ms/file, "
                f"upload {h.upload_rate:,.0f}/s at {h.upload_cpu:.2f} ms/report, "
                f"stand-in {h.server_cpu:.2f} ms/report "
                f"-> ceiling {h.ceiling(cores):,.0f}/s on {cores} cores"
            )
        if sup.worker_pids().get(station.name) != worker.pid:
            raise BenchError("the worker was restarted: its CPU is not one process's")
    return [
        Figure(
            NAME,
            "intake only (uploads paused): files -> queued",
            "/s",
            [h.intake_rate for h in repeats],
        ),
        Figure(NAME, "intake only: worker CPU per file", "ms", [h.intake_cpu for h in repeats]),
        Figure(NAME, "upload only: queued -> accepted", "/s", [h.upload_rate for h in repeats]),
        Figure(NAME, "upload only: worker CPU per report", "ms", [h.upload_cpu for h in repeats]),
        Figure(NAME, "stand-in CPU per report (same cores)", "ms", [h.server_cpu for h in repeats]),
        Figure(
            NAME,
            f"CPU ceiling on {cores} cores: {cores} x 1000 / (intake + upload + stand-in)",
            "/s",
            [h.ceiling(cores) for h in repeats],
        ),
    ]
