"""Footprint of an idle host: supervisor and worker memory, idle CPU with 16 instances.

A real supervisor (``pywats-client supervise``) runs 16 stations, each a real
worker connected to the stand-in and watching its own empty folder: a host
between tests. After they settle, the CPU time (user+system, psutil) of the
supervisor, every worker and multiprocessing's helper process is summed over
consecutive windows (a percentage of one core; the machine has ``cpu_count``
cores), and the memory of each is read: RSS (what the target names; shared
pages count in every process) and USS (memory unique to a process: what one
more worker really costs).
"""

from __future__ import annotations

import time

import psutil

from bench._context import Context
from bench._procs import BenchError, cpu_seconds, supervise, write_stations
from bench._stats import Figure, Target

NAME = "footprint"
MIB = 2**20
WORKER_RSS_LIMIT_MIB = 60.0


def run(ctx: Context) -> list[Figure]:
    count = ctx.size(16, quick=4)
    window = ctx.size(5.0, quick=2.0)
    windows = ctx.repeats(4, quick=1)
    registry, stations = write_stations(ctx.folder("footprint"), count, ctx.server())
    with supervise(registry) as sup:
        sup.wait_running([s.name for s in stations], timeout=180)
        time.sleep(ctx.size(10.0, quick=2.0))  # settle: start-up work and first pings done
        supervisor = psutil.Process(sup.pid)
        pids = set(sup.worker_pids().values())
        children = supervisor.children(recursive=True)
        workers = [p for p in children if p.pid in pids]
        if len(workers) != count:
            raise BenchError(f"{len(workers)} worker processes found, {count} expected")
        everyone = [supervisor, *children]
        cpu: list[float] = []
        sup_cpu: list[float] = []
        for _ in range(windows):
            before, sup_before = cpu_seconds(*everyone), cpu_seconds(supervisor)
            began = time.monotonic()
            time.sleep(window)
            elapsed = time.monotonic() - began
            cpu.append((cpu_seconds(*everyone) - before) / elapsed * 100)
            sup_cpu.append((cpu_seconds(supervisor) - sup_before) / elapsed * 100)
        memory = {p.pid: p.memory_full_info() for p in everyone}
    cores = psutil.cpu_count() or 1
    worker_rss = [memory[p.pid].rss / MIB for p in workers]
    ctx.log(
        f"{count} idle instances, {len(children) - len(workers)} helper process(es); idle CPU "
        + ", ".join(f"{c:.2f}%" for c in cpu)
        + f" of one core ({cores} cores)"
    )
    return [
        Figure(NAME, f"idle CPU, supervisor + {count} workers", "%", cpu, note="% of one core"),
        Figure(NAME, "idle CPU, supervisor alone", "%", sup_cpu, note="% of one core"),
        Figure(NAME, "supervisor RSS", "MiB", [memory[sup.pid].rss / MIB]),
        Figure(NAME, "supervisor USS", "MiB", [memory[sup.pid].uss / MIB]),
        Figure(
            NAME,
            "idle worker RSS",
            "MiB",
            worker_rss,
            Target("<=", WORKER_RSS_LIMIT_MIB, on="max"),
            note="each worker",
        ),
        Figure(
            NAME, "idle worker USS", "MiB", [memory[p.pid].uss / MIB for p in workers], note="each"
        ),
    ]
