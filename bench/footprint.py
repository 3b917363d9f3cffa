"""Footprint of an idle host: supervisor and worker memory, and total idle CPU.

A real supervisor process runs N real workers (``WATSClient``, offline, each
watching its own empty folder: the state of a station between tests). After a
settling period the script samples, over a window, the CPU time of the
supervisor and every worker (psutil user+system, so the percentage is of one
core; the machine has ``cpu_count`` cores) and their memory: RSS (what the
issue's target names; it counts shared pages once per process) and USS (memory
unique to each process, what an extra worker really costs).

    .venv/bin/python bench/footprint.py                 # 16 instances, 30 s window
    .venv/bin/python bench/footprint.py --instances 4 --window 10
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from pywats_client.supervisor._statusfile import read_status


def write_stations(root: Path, count: int) -> Path:
    lines = ["[supervisor]", 'log_dir = "logs"']
    for i in range(count):
        name = f"st-{i + 1:02d}"
        folder = root / name
        (folder / "in").mkdir(parents=True)
        (folder / "config.json").write_text(
            json.dumps({"instance_name": name, "watch_paths": ["in"], "queue_path": "queue"})
        )
        lines += ["", "[[instance]]", f'name = "{name}"', f'config = "{name}/config.json"']
    path = root / "instances.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def mib(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=16)
    parser.add_argument("--settle", type=float, default=15.0, help="seconds before measuring")
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pywats-bench-footprint-") as tmp:
        root = Path(tmp)
        registry = write_stations(root, args.instances)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYWATS_")}
        with open(root / "supervise.out", "wb") as out:
            sup = subprocess.Popen(
                [sys.executable, "-m", "pywats_client", "supervise", "--registry", str(registry)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 120
            while True:
                doc = read_status(root / ".pywats" / "status.json")
                states = [r["state"] for r in doc["instances"]] if doc else []
                if len(states) == args.instances and set(states) == {"running"}:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"instances not running after 120 s: {states}")
                time.sleep(0.2)
            started = time.monotonic()
            time.sleep(args.settle)
            supervisor = psutil.Process(sup.pid)
            worker_pids = {r["pid"] for r in doc["instances"]}
            children = supervisor.children(recursive=True)
            workers = [p for p in children if p.pid in worker_pids]
            # multiprocessing's resource tracker (one per supervisor), counted in the total
            helpers = [p for p in children if p.pid not in worker_pids]
            everyone = [supervisor, *children]
            cpu_before = cpu_seconds(everyone)
            sup_before = cpu_seconds([supervisor])
            t0 = time.monotonic()
            time.sleep(args.window)
            elapsed = time.monotonic() - t0
            total_cpu = (cpu_seconds(everyone) - cpu_before) / elapsed
            sup_cpu = (cpu_seconds([supervisor]) - sup_before) / elapsed
            mem = {p.pid: p.memory_full_info() for p in everyone}
        finally:
            sup.send_signal(signal.SIGTERM)
            code = sup.wait(60)
    worker_rss = [mem[p.pid].rss for p in workers]
    worker_uss = [mem[p.pid].uss for p in workers]
    cores = psutil.cpu_count() or 1
    helper_rss = sum(mem[p.pid].rss for p in helpers)
    result: dict[str, Any] = {
        "instances": args.instances,
        "worker_processes": len(workers),
        "helper_processes": len(helpers),
        "helper_rss_mib": round(helper_rss / 2**20, 1),
        "window_s": round(elapsed, 1),
        "settled_s": round(t0 - started, 1),
        "idle_cpu_percent_of_one_core": round(total_cpu * 100, 2),
        "idle_cpu_percent_of_machine": round(total_cpu * 100 / cores, 2),
        "supervisor_cpu_percent": round(sup_cpu * 100, 2),
        "supervisor_rss_mib": round(mem[sup.pid].rss / 2**20, 1),
        "supervisor_uss_mib": round(mem[sup.pid].uss / 2**20, 1),
        "worker_rss_mib": {
            "min": round(min(worker_rss) / 2**20, 1),
            "median": round(statistics.median(worker_rss) / 2**20, 1),
            "max": round(max(worker_rss) / 2**20, 1),
        },
        "worker_uss_mib_median": round(statistics.median(worker_uss) / 2**20, 1),
        "cpus": cores,
        "supervisor_exit": code,
    }
    print(
        f"{args.instances} idle instances ({len(workers)} workers, {len(helpers)} helper "
        f"process(es) of multiprocessing, {mib(helper_rss)} RSS), measured "
        f"{elapsed:.0f} s after {t0 - started:.0f} s settling; Python {sys.version.split()[0]}, "
        f"{cores} CPUs"
    )
    print(
        f"  idle CPU, supervisor + workers + helpers: {total_cpu * 100:.2f}% of one core = "
        f"{total_cpu * 100 / cores:.2f}% of the machine (supervisor alone {sup_cpu * 100:.2f}%)"
    )
    print(
        f"  supervisor: RSS {mib(mem[sup.pid].rss)}, USS {mib(mem[sup.pid].uss)}\n"
        f"  worker RSS: min {mib(min(worker_rss))}, median {mib(statistics.median(worker_rss))}, "
        f"max {mib(max(worker_rss))}; worker USS median {mib(statistics.median(worker_uss))}\n"
        f"  supervisor exit code {code}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    ok = total_cpu * 100 / cores < 5.0 and max(worker_rss) <= 60 * 2**20 and code == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
