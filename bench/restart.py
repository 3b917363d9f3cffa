"""Worker recovery time: ``kill -9`` of a worker -> first heartbeat of its replacement.

A real supervisor process (``pywats-client supervise``) runs real workers
(``WATSClient``, offline: no server, an empty watch folder each). Each round
waits until the victim has run stably (``stable_after``; the restart policy
then restarts at once, as after any crash of a long-running worker), sends
SIGKILL to its worker and polls ``status.json`` until a new pid reports a
heartbeat. Latency = that heartbeat's own timestamp (wall clock, sent by the
worker) - the moment of the kill. The other instances run throughout.

    .venv/bin/python bench/restart.py                  # 20 kills, 2 instances
    .venv/bin/python bench/restart.py --kills 50 --instances 4
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

STABLE_AFTER = 2.0


def write_stations(root: Path, count: int) -> Path:
    lines = [
        "[supervisor]",
        'log_dir = "logs"',
        "heartbeat_interval = 1.0",
        "status_interval = 1.0",
        f"stable_after = {STABLE_AFTER}",
    ]
    for i in range(count):
        name = f"st-{i + 1}"
        folder = root / name
        (folder / "in").mkdir(parents=True)
        (folder / "config.json").write_text(
            json.dumps({"instance_name": name, "watch_paths": ["in"], "queue_path": "queue"})
        )
        lines += ["", "[[instance]]", f'name = "{name}"', f'config = "{name}/config.json"']
    path = root / "instances.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def instances(state_dir: Path) -> dict[str, dict[str, Any]]:
    doc = read_status(state_dir / "status.json")
    return {r["name"]: r for r in doc["instances"]} if doc else {}


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pywats-bench-restart-") as tmp:
        root = Path(tmp)
        registry = write_stations(root, args.instances)
        state_dir = root / ".pywats"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYWATS_")}
        with open(root / "supervise.out", "wb") as out:
            sup = subprocess.Popen(
                [sys.executable, "-m", "pywats_client", "supervise", "--registry", str(registry)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        latencies: list[float] = []
        others_restarted = 0
        try:
            names = [f"st-{i + 1}" for i in range(args.instances)]
            wait_for(
                lambda: all(
                    instances(state_dir).get(n, {}).get("state") == "running" for n in names
                ),
                60,
                "all instances running",
            )
            print(
                f"supervisor pid {sup.pid}, {args.instances} instance(s), {args.kills} kills of "
                f"st-1, stable_after {STABLE_AFTER} s; Python {sys.version.split()[0]}, "
                f"{psutil.cpu_count()} CPUs"
            )
            others_before = {n: instances(state_dir)[n]["pid"] for n in names[1:]}
            for k in range(args.kills):
                record = wait_for(
                    lambda: (
                        (r := instances(state_dir).get("st-1"))
                        and r["state"] == "running"
                        and (r["uptime_s"] or 0) >= STABLE_AFTER + 0.5
                        and r
                    ),
                    60,
                    "st-1 running stably",
                    interval=0.1,
                )
                victim = record["pid"]
                killed_at = time.time()
                os.kill(victim, signal.SIGKILL)

                def replaced(victim: int = victim, killed_at: float = killed_at) -> Any:
                    r = instances(state_dir).get("st-1")
                    ok = r and r.get("pid") not in (None, victim)
                    return r if ok and (r.get("last_heartbeat_at") or 0) > killed_at else None

                new = wait_for(replaced, 30, "a new st-1 heartbeat")
                latency = new["last_heartbeat_at"] - killed_at
                latencies.append(latency)
                print(f"  kill {k + 1:2d}: pid {victim} -> {new['pid']}: {latency * 1000:.0f} ms")
            now = instances(state_dir)
            others_restarted = sum(1 for n, pid in others_before.items() if now[n]["pid"] != pid)
        finally:
            sup.send_signal(signal.SIGTERM)
            code = sup.wait(60)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    result = {
        "kills": len(latencies),
        "instances": args.instances,
        "p50_s": round(p50, 3),
        "p99_s": round(p99, 3),
        "mean_s": round(statistics.mean(latencies), 3),
        "max_s": round(max(latencies), 3),
        "other_instances_restarted": others_restarted,
        "supervisor_exit": code,
    }
    print(
        f"kill -9 -> new heartbeat: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms over {len(latencies)} kills; other instances "
        f"restarted: {others_restarted}; supervisor exit code {code}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if p99 <= 2.0 and others_restarted == 0 and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
