"""End-to-end rate: result files dropped into watch folders -> reports accepted by the server.

One real supervisor (``pywats-client supervise``) runs 1, 2, 4 or 8 stations,
each a worker process watching its own folder and uploading to the stand-in
(its own process). Each repeat drops a burst of small WSJF files (written
beforehand in a staging folder on the same disk, then renamed into the watch
folders, as testers that write atomically do; hence ``ready_after`` 0 here, the
latency scenario keeps the default) spread evenly over the stations, and the
rate is files / (last report accepted by the server - first file dropped).
Every report is checked to reach the server exactly once. Just before each
burst the raw disk limit (see ``disk``) is measured on the same disk, so the
ratio compares neighbours in time.

With one station, each repeat also runs the same burst through the lean loop
(``bench/_lean.py``: the station's durable steps and nothing else, in this
process, against the same stand-in), so the table shows how far the station is
from what one process doing only these steps reaches on this machine, and how
far that is from the raw disk limit.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil

from bench._context import Context
from bench._lean import lean_loop
from bench._procs import (
    BenchError,
    Server,
    Station,
    stage_burst,
    station_cpu_seconds,
    supervise,
    write_stations,
)
from bench._reports import report_json
from bench._stats import Figure, Target
from bench.scenarios.disk import raw_rate

NAME = "e2e"
RAW_SAMPLE = 300
#: Settings for the stations of this scenario (everything else: the product's defaults).
CONFIG = {"ready_after": 0.0}


def _staged(ctx: Context, server: Server, total: int, tag: str) -> tuple[Path, list[Path], float]:
    """A fresh folder with ``total`` files staged in it, the server emptied, and the
    raw limit/s measured on the same disk just before the burst."""
    folder = ctx.folder(tag)
    staged = stage_burst(folder / "staging", total, tag)
    server.reset()
    return folder, staged, raw_rate(folder, RAW_SAMPLE)


def _burst(
    ctx: Context,
    server: Server,
    stations: list[Station],
    workers: list[psutil.Process],
    total: int,
    tag: str,
) -> tuple[float, float, float]:
    """Drop ``total`` files over ``stations``.

    Returns files/s to the server, the raw limit/s just before, and the stations'
    CPU (user+system of all workers and their upload helpers) in ms per file.
    """
    folder, staged, raw = _staged(ctx, server, total, f"burst-{tag}")
    targets = [stations[i % len(stations)].watch / path.name for i, path in enumerate(staged)]
    cpu = station_cpu_seconds(*workers)
    dropped = time.time()
    for path, target in zip(staged, targets, strict=True):
        os.replace(path, target)
    server.wait_for(total, timeout=120 + total / 20, what=f"{total} dropped files at the server")
    cpu = station_cpu_seconds(*workers) - cpu
    last = max(server.accept_times().values())
    server.check_exactly_once(total)
    ctx.discard(folder)
    return total / (last - dropped), raw, cpu / total * 1000


def _lean_burst(ctx: Context, server: Server, total: int, tag: str) -> tuple[float, float, float]:
    """The same burst through the lean loop: files/s, the raw limit/s just before, CPU ms/file."""
    folder, staged, raw = _staged(ctx, server, total, f"lean-{tag}")
    rate, cpu = lean_loop(server, staged, folder)
    server.check_exactly_once(total)
    ctx.discard(folder)
    return rate, raw, cpu


def _warm_up(server: Server, stations: list[Station]) -> None:
    """One file per station end to end: every worker is up and connected."""
    for station in stations:
        sn = f"warmup-{station.name}"
        (station.watch / f"{sn}.json").write_bytes(report_json(sn))
    server.wait_for(len(stations), timeout=120, what="the warm-up files at the server")


def run(ctx: Context) -> list[Figure]:
    total = ctx.size(3000, quick=100)
    repeats = ctx.repeats(3)
    figures: list[Figure] = []
    for count in ctx.size([1, 2, 4, 8], quick=[1, 2]):
        server = ctx.server()
        registry, stations = write_stations(
            ctx.folder(f"e2e-{count}"), count, server, config=CONFIG
        )
        rates: list[float] = []
        ratios: list[float] = []
        cpus: list[float] = []
        lean: list[tuple[float, float, float]] = []
        with supervise(registry) as sup:
            sup.wait_running([s.name for s in stations])
            _warm_up(server, stations)
            workers = [psutil.Process(pid) for pid in sup.worker_pids().values()]
            for r in range(repeats):
                rate, raw, cpu = _burst(ctx, server, stations, workers, total, f"n{count}r{r}")
                rates.append(rate)
                ratios.append(rate / raw)
                cpus.append(cpu)
                ctx.log(
                    f"{count} instance(s), repeat {r + 1}: {total} files at {rate:,.0f}/s "
                    f"(raw limit just before: {raw:,.0f}/s); stations' CPU {cpu:.2f} ms/file"
                )
                if count == 1:
                    lean_rate, lean_raw, lean_cpu = _lean_burst(ctx, server, total, f"n1r{r}")
                    lean.append((lean_rate, lean_raw, lean_cpu))
                    ctx.log(
                        f"lean loop, repeat {r + 1}: {lean_rate:,.0f}/s "
                        f"(raw limit just before: {lean_raw:,.0f}/s); CPU {lean_cpu:.2f} ms/file"
                    )
            if not sup.alive():
                raise BenchError(f"the supervisor died during the bursts:\n{sup.tail()}")
        plural = "s" if count > 1 else ""
        one = count == 1
        figures.append(
            Figure(
                NAME,
                f"{count} instance{plural}: files -> accepted",
                "/s",
                rates,
                Target(">=", 500) if one else None,
            )
        )
        figures.append(
            Figure(
                NAME,
                f"{count} instance{plural}: rate / raw limit",
                "ratio",
                ratios,
                Target(">=", 0.4) if one else None,
            )
        )
        label = f"{count} instance{plural}: stations' CPU per file (workers + helpers)"
        figures.append(Figure(NAME, label, "ms", cpus))
        if lean:
            figures += _lean_figures(rates, lean)
    return figures


def _lean_figures(rates: list[float], lean: list[tuple[float, float, float]]) -> list[Figure]:
    """The lean loop's figures, and the station against it repeat by repeat."""
    return [
        Figure(
            NAME, "lean loop (durable steps only): files -> accepted", "/s", [r for r, _, _ in lean]
        ),
        Figure(NAME, "lean loop: rate / raw limit", "ratio", [r / raw for r, raw, _ in lean]),
        Figure(NAME, "lean loop: CPU per file (this process)", "ms", [c for _, _, c in lean]),
        Figure(
            NAME,
            "1 instance / lean loop",
            "ratio",
            [station / r for station, (r, _, _) in zip(rates, lean, strict=True)],
        ),
    ]
