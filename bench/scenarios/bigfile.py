"""One big result file: the worker's peak memory and time from landing to accepted.

Testers with thousands of steps (in-circuit test, burn-in logs) write WSJF
files of many megabytes; a station PC runs several workers, so what one big
file costs in memory matters more than its speed. Each repeat starts a fresh
real worker (``pywats-client run``, its own process), lets it settle, reads
its RSS, lands one WSJF file of about ``SIZE`` bytes (numeric steps, written
under a ``.tmp`` name and renamed in) and waits for the stand-in to accept
the report. The worker's peak RSS is the kernel's high-water mark
(``VmHWM``) where there is one, else the largest of RSS reads every 20 ms.

Side by side in the same run: the time this benchmark's own process takes to
``json.loads`` and ``json.dumps`` the same file, the floor of any JSON
passthrough in Python; the ratio says how many such passes the pipeline costs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil

from bench._context import Context
from bench._procs import BenchError, poll, worker_run, write_stations
from bench._reports import sized_report
from bench._stats import Figure

NAME = "bigfile"
MIB = 2**20
#: Under the stand-in's 16 MiB request limit, with room for the envelope.
SIZE = 12 * MIB


def _high_water_mark(pid: int) -> float | None:
    """Peak RSS in bytes from ``/proc/<pid>/status`` (Linux), else None."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) * 1024
    return None


def _json_floor(path: Path) -> float:
    """Seconds to parse and serialize ``path`` once in this process."""
    began = time.perf_counter()
    json.dumps(json.loads(path.read_bytes()))
    return time.perf_counter() - began


def run(ctx: Context) -> list[Figure]:
    size = ctx.size(SIZE, quick=2 * MIB)
    server = ctx.server()
    folder = ctx.folder("bigfile")
    _, (station,) = write_stations(folder, 1, server, config={"ready_after": 0.5})
    growth: list[float] = []
    per_mib: list[float] = []
    seconds: list[float] = []
    ratios: list[float] = []
    for r in range(ctx.repeats(2)):
        server.reset()
        staged = folder / f"big{r}.json.tmp"
        staged.write_bytes(json.dumps(sized_report(f"big{r}", size)).encode())
        file_mib = staged.stat().st_size / MIB
        floor = _json_floor(staged)
        with worker_run(station) as worker:
            proc = psutil.Process(worker.pid)
            poll(lambda: server.stats().get("requests", 0) > 0, 60, "the worker's ping")
            time.sleep(1.0)  # settle: start-up work done, as an idle station
            idle = proc.memory_info().rss
            peak = idle
            landed = time.monotonic()
            os.replace(staged, station.watch / f"big{r}.json")
            while not server.stats().get("distinct_reports"):
                if not worker.alive():
                    raise BenchError(f"the worker exited:\n{worker.tail()}")
                if time.monotonic() - landed > 300:
                    raise BenchError(f"big{r}.json not accepted within 300 s:\n{worker.tail()}")
                peak = max(peak, proc.memory_info().rss)
                time.sleep(0.02)
            took = time.monotonic() - landed
            peak = max(peak, _high_water_mark(worker.pid) or 0.0)
        server.check_exactly_once(1)
        growth.append((peak - idle) / MIB)
        per_mib.append(growth[-1] / file_mib)
        seconds.append(took)
        ratios.append(took / floor)
        ctx.log(
            f"repeat {r + 1}: {file_mib:.1f} MiB file, worker {idle / MIB:.0f} -> "
            f"{peak / MIB:.0f} MiB, accepted after {took:.1f} s "
            f"(json loads+dumps here: {floor:.2f} s)"
        )
    label = f"one {size / MIB:.0f} MiB WSJF file"
    return [
        Figure(NAME, f"worker peak RSS growth, {label}", "MiB", growth),
        Figure(NAME, "peak RSS growth per MiB of file", "ratio", per_mib),
        Figure(NAME, f"landed -> accepted, {label}", "s", seconds),
        Figure(NAME, "landed -> accepted / json loads+dumps", "ratio", ratios),
    ]
