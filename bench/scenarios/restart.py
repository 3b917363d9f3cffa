"""Recovery: ``kill -9`` of a worker -> the first heartbeat of its replacement.

A real supervisor (``pywats-client supervise``) runs two stations connected to
the stand-in (idle: empty watch folders). Each round waits until the victim
has run ``stable_after`` (1 s here instead of the default 60 s, so 20 rounds
fit in a minute; after a stable run the restart policy restarts at once, as
after any crash of a long-running worker), kills its worker process
(SIGKILL; ``TerminateProcess`` on Windows) and polls ``status.json`` until a
new pid has sent a heartbeat. Latency = that heartbeat's own timestamp (sent
by the new worker) - the moment of the kill. The other station must run on
untouched.
"""

from __future__ import annotations

import time
from typing import Any

import psutil

from bench._context import Context
from bench._procs import BenchError, Supervise, poll, supervise, write_stations
from bench._stats import Figure, Target, percentile

NAME = "restart"
STABLE_AFTER = 1.0
P99_LIMIT_MS = 1500.0


def _stable(sup: Supervise, name: str) -> dict[str, Any] | None:
    record = sup.records().get(name)
    if record and record["state"] == "running" and (record["uptime_s"] or 0) >= STABLE_AFTER + 0.3:
        return record
    return None


def _one_kill(sup: Supervise, name: str) -> float:
    """Kill ``name``'s worker once it runs stably; ms until its replacement beats."""
    victim = int(poll(lambda: _stable(sup, name), 60, f"{name} running stably", 0.05)["pid"])
    killed_at = time.time()
    psutil.Process(victim).kill()

    def replaced() -> dict[str, Any] | None:
        r = sup.records().get(name) or {}
        new = r.get("pid") not in (None, victim) and (r.get("last_heartbeat_at") or 0) > killed_at
        return r if new else None

    record = poll(replaced, 30, f"a new {name} worker's heartbeat", interval=0.005)
    return (float(record["last_heartbeat_at"]) - killed_at) * 1000


def run(ctx: Context) -> list[Figure]:
    kills = ctx.size(20, quick=3)
    registry, stations = write_stations(
        ctx.folder("restart"), 2, ctx.server(), supervisor={"stable_after": STABLE_AFTER}
    )
    victim, bystander = (s.name for s in stations)
    latencies: list[float] = []
    with supervise(registry) as sup:
        sup.wait_running([victim, bystander])
        other = sup.worker_pids()[bystander]
        for _ in range(kills):
            latencies.append(_one_kill(sup, victim))
        if sup.worker_pids().get(bystander) != other:
            raise BenchError(f"{bystander} was restarted although only {victim} was killed")
    ctx.log(
        f"{kills} kills: " + ", ".join(f"{v:.0f}" for v in latencies) + " ms"
        f" (p50 {percentile(latencies, 50):.0f}, p99 {percentile(latencies, 99):.0f})"
    )
    return [
        Figure(NAME, "kill -9 -> new heartbeat, each kill", "ms", latencies, note="median = p50"),
        Figure(
            NAME,
            f"kill -9 -> new heartbeat, p99 of {kills} kills",
            "ms",
            [percentile(latencies, 99)],
            Target("<=", P99_LIMIT_MS),
        ),
    ]
