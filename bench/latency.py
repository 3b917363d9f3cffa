"""Latency from a result file landing in a watch folder to the server accepting its report.

A real worker (``pywats-client run`` in its own process) watches a folder; this
script drops small WSJF files into it at a steady rate (each written under a
temp name, then renamed in, as testers that write atomically do; the landing
time is taken right after the rename) and the worker uploads them to a
stand-in server (its own process). The worker records when the server's 2xx
for each report arrived (a wrapper around ``WATSApiClient.submit_report``
installed before the CLI starts: the only change to the production code path).
Latency = accepted - landed, per report; p50/p99 per run, then the median and
spread of those over the runs. Every run also checks that every file reached
the server exactly once.

    .venv/bin/python bench/latency.py                         # 50 files/s, 20 s, 3 runs
    .venv/bin/python bench/latency.py --rate 50 --duration 30 --runs 5 --ready-after 1.0

Target (issue 7): p50 below ready_after + 100 ms at 50 files/s.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Keep bench/ off the import path (bench/queue.py would shadow the stdlib).
# ruff: noqa: E402
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from typing import Any

import psutil

from pywats_client.standin import StandinProcess, generate_token

PRELUDE = """
import time
from pywats_client.services import api_client as _api

_log = open({accepted!r}, "a", buffering=1)
_submit = _api.WATSApiClient.submit_report


async def _timed_submit(self, report):
    result = await _submit(self, report)
    _log.write(f"{{report['id']}} {{time.time():.6f}}\\n")
    return result


_api.WATSApiClient.submit_report = _timed_submit
"""

REPORT: dict[str, Any] = {
    "type": "T",
    "pn": "PSU-200",
    "rev": "B",
    "processCode": 10,
    "result": "P",
    "start": "2026-03-02T09:15:00+01:00",
    "root": {
        "id": 0,
        "group": "M",
        "stepType": "SequenceCall",
        "name": "MainSequence",
        "status": "P",
        "steps": [
            {
                "id": 1,
                "group": "M",
                "stepType": "ET_NLT",
                "name": "Vout",
                "status": "P",
                "numericMeas": [
                    {
                        "value": 5.02,
                        "unit": "V",
                        "compOp": "GELE",
                        "lowLimit": 4.9,
                        "highLimit": 5.1,
                        "status": "P",
                    }
                ],
            }
        ],
    },
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def start_worker(config: Path, accepted: Path, log: Path) -> subprocess.Popen[bytes]:
    code = (
        PRELUDE.format(accepted=str(accepted))
        + "\nimport sys\nfrom pywats_client.cli import main\n"
        + f"sys.exit(main(['run', '--config', {str(config)!r}, '--no-live']))\n"
    )
    flags = subprocess.CREATE_NEW_PROCESS_GROUP if sys.platform == "win32" else 0
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT, creationflags=flags
        )
    return proc


def warm_up(proc: subprocess.Popen[bytes], watch: Path, accepted: Path, log: Path) -> None:
    """One file end to end first: the worker is up and its connection is open."""
    (watch / "warmup.json").write_text(json.dumps({**REPORT, "id": str(uuid.uuid4()), "sn": "W"}))
    deadline = time.monotonic() + 60
    while not (accepted.exists() and accepted.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


def stop_worker(proc: subprocess.Popen[bytes]) -> int:
    if sys.platform == "win32":
        proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
    else:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(60)


def one_run(args: argparse.Namespace, root: Path) -> dict[str, float]:
    token = generate_token()
    station = root / "station"
    watch = station / "in"
    watch.mkdir(parents=True)
    accepted_file = root / "accepted.txt"
    with StandinProcess(root / "standin", token=token) as server:
        config = station / "config.json"
        config.write_text(
            json.dumps(
                {
                    "instance_name": "bench-latency",
                    "service_address": server.url,
                    "api_token": token,
                    "watch_paths": ["in"],
                    "queue_path": "queue",
                    "converter_path": "converters",
                    "ready_after": args.ready_after,
                    "log_level": "WARNING",
                }
            )
        )
        worker = start_worker(config, accepted_file, root / "worker.log")
        landed: dict[str, float] = {}
        try:
            warm_up(worker, watch, accepted_file, root / "worker.log")
            cpu_before = psutil.Process(worker.pid).cpu_times()
            load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            count = int(args.rate * args.duration)
            start = time.monotonic() + 0.5
            for n in range(count):
                delay = start + n / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                report_id = str(uuid.uuid4())
                body = json.dumps({**REPORT, "id": report_id, "sn": f"LAT{n:06d}"})
                tmp = watch / f"r{n:06d}.json.tmp"
                tmp.write_text(body)
                os.replace(tmp, watch / f"r{n:06d}.json")
                landed[report_id] = time.time()
            accepted: dict[str, float] = {}
            deadline = time.monotonic() + 60 + args.ready_after
            while not set(landed) <= set(accepted) and time.monotonic() < deadline:
                time.sleep(0.2)
                if accepted_file.exists():
                    for line in accepted_file.read_text().splitlines():
                        rid, _, when = line.partition(" ")
                        accepted.setdefault(rid, float(when))
            cpu_after = psutil.Process(worker.pid).cpu_times()
        finally:
            code = stop_worker(worker)
        stats = server_stats(server.url, token)
    worker_cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    missing = set(landed) - set(accepted)
    expected = count + 1  # and the warm-up file
    if missing or code != 0 or (stats["accepted"], stats["distinct_reports"]) != (expected,) * 2:
        raise SystemExit(
            f"run failed: {len(missing)} not accepted, worker exit {code}, server {stats}"
        )
    latencies = [accepted[rid] - landed[rid] for rid in landed]
    return {
        "count": count,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies),
        "min": min(latencies),
        "cpu_ms_per_file": worker_cpu / count * 1000,
        "load": load_before,
    }


def server_stats(url: str, token: str) -> dict[str, Any]:
    import httpx

    with httpx.Client(trust_env=False, timeout=30) as http:
        data = http.get(f"{url}/standin/stats", headers={"Authorization": f"Basic {token}"})
        data.raise_for_status()
        stats: dict[str, Any] = data.json()
        return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="files per second (50)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run (20)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (3)")
    parser.add_argument("--ready-after", type=float, default=1.0, help="config ready_after (1.0)")
    args = parser.parse_args()
    print(
        f"rate {args.rate:g} files/s for {args.duration:g} s, ready_after {args.ready_after:g} s, "
        f"{args.runs} runs; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    results = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="pywats-latency-") as tmp:
            r = one_run(args, Path(tmp))
        results.append(r)
        print(
            f"  run {run + 1}: {r['count']:.0f} files, all accepted once; "
            f"p50 {r['p50'] * 1000:.0f} ms, p99 {r['p99'] * 1000:.0f} ms, "
            f"min {r['min'] * 1000:.0f} ms, max {r['max'] * 1000:.0f} ms; "
            f"worker CPU {r['cpu_ms_per_file']:.1f} ms/file; load avg at start {r['load']:.1f}"
        )
    p50s = [r["p50"] for r in results]
    p99s = [r["p99"] for r in results]
    target = args.ready_after + 0.1
    print(
        f"median p50 {statistics.median(p50s) * 1000:.0f} ms "
        f"(runs {min(p50s) * 1000:.0f}-{max(p50s) * 1000:.0f}), "
        f"median p99 {statistics.median(p99s) * 1000:.0f} ms "
        f"(runs {min(p99s) * 1000:.0f}-{max(p99s) * 1000:.0f}); "
        f"target p50 < {target * 1000:.0f} ms: "
        + ("met" if statistics.median(p50s) < target else "NOT met")
    )


if __name__ == "__main__":
    main()
