"""Throughput of the WATS stand-in server: small WSJF reports per second.

The server runs as its own process (``pywats-client server``, as tests and the
demo run it); clients run in one or more other processes over keep-alive
HTTP/1.1 connections, each report with a fresh id. Every run checks that the
server stored exactly the reports it acknowledged (nothing lost or doubled).

    .venv/bin/python bench/standin.py                       # minimal client: server capacity
    .venv/bin/python bench/standin.py --client httpx        # the service's HTTP library
    .venv/bin/python bench/standin.py --runs 5 --reports 5000 --connections 16 --processes 2
"""

from __future__ import annotations

import sys
from pathlib import Path

# Scripts in bench/ may be named like stdlib modules (bench/queue.py): keep this
# folder off the import path so `import queue` finds the standard library. The
# imports below must come after this line.
# ruff: noqa: E402
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import asyncio
import json
import multiprocessing
import statistics
import tempfile
import time
import uuid
from typing import Any

import httpx
import psutil

from pywats_client.standin import StandinProcess, generate_token

REPORT_TEMPLATE: dict[str, Any] = {
    "type": "T",
    "pn": "PSU-200",
    "sn": "SN000123",
    "rev": "B",
    "processCode": 10,
    "processName": "Final Function",
    "result": "P",
    "machineName": "bench-st1",
    "start": "2026-03-02T09:15:00+01:00",
    "uut": {"user": "op7", "execTime": 12.4},
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


def make_body(index: int) -> bytes:
    report = dict(REPORT_TEMPLATE, id=str(uuid.uuid4()), sn=f"SN{index:08d}")
    return json.dumps(report).encode()


# --- clients ---------------------------------------------------------------------------


async def _httpx_worker(url: str, token: str, bodies: list[bytes], counter: list[int]) -> int:
    errors = 0
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:
        while counter[0] < len(bodies):
            body = bodies[counter[0]]
            counter[0] += 1
            response = await client.post("/api/Report/WSJF", content=body)
            errors += response.status_code != 200
    return errors


async def _raw_worker(url: str, token: str, bodies: list[bytes], counter: list[int]) -> int:
    """A minimal keep-alive HTTP/1.1 client: measures the server, not the client library."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST /api/Report/WSJF HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    errors = 0
    try:
        while counter[0] < len(bodies):
            body = bodies[counter[0]]
            counter[0] += 1
            writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
            header = await reader.readuntil(b"\r\n\r\n")
            errors += not header.startswith(b"HTTP/1.1 200 ")
            length = 0
            for line in header.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
    finally:
        writer.close()
    return errors


def client_process(
    kind: str, url: str, token: str, count: int, connections: int, start_at: float
) -> tuple[float, int]:
    """Send ``count`` reports over ``connections`` connections; (seconds, errors)."""
    bodies = [make_body(i) for i in range(count)]
    worker = _httpx_worker if kind == "httpx" else _raw_worker

    async def main() -> tuple[float, int]:
        counter = [0]
        await asyncio.sleep(max(0.0, start_at - time.time()))
        began = time.perf_counter()
        results = await asyncio.gather(
            *(worker(url, token, bodies, counter) for _ in range(connections))
        )
        return time.perf_counter() - began, sum(results)

    return asyncio.run(main())


# --- runs --------------------------------------------------------------------------------


def stats(url: str, token: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/standin/stats", headers={"Authorization": f"Basic {token}"})
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def one_run(
    args: argparse.Namespace, url: str, token: str, pool: Any, server: psutil.Process
) -> tuple[float, float]:
    """(reports/s, server CPU seconds per report) of one run."""
    per_process: int = args.reports // args.processes
    total = per_process * args.processes
    before = stats(url, token)
    start_at = time.time() + 1.0  # every client process has built its bodies by then
    jobs = [
        pool.apply_async(
            client_process, (args.client, url, token, per_process, args.connections, start_at)
        )
        for _ in range(args.processes)
    ]
    cpu_before = sum(server.cpu_times()[:2])
    results = [job.get(timeout=600) for job in jobs]
    server_cpu = sum(server.cpu_times()[:2]) - cpu_before
    elapsed = float(max(seconds for seconds, _ in results))
    errors = sum(count for _, count in results)
    after = stats(url, token)
    stored = after["distinct_reports"] - before["distinct_reports"]
    commits = after["commits"] - before["commits"]
    rate = total / elapsed
    print(
        f"  {total} reports in {elapsed:.2f} s = {rate:,.0f}/s; errors {errors}; "
        f"stored {stored}; {commits} commits ({total / max(commits, 1):.1f} reports/commit); "
        f"server CPU {server_cpu / total * 1e6:.0f} us/report",
        flush=True,
    )
    if errors or stored != total:
        raise SystemExit(f"FAILED: {errors} errors, {stored} of {total} reports stored")
    return float(rate), float(server_cpu / total)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="raw: minimal keep-alive client (measures the server); httpx: the library the "
        "service uses (client-bound on 2 cores)",
    )
    parser.add_argument("--reports", type=int, default=5000, help="reports per run (all clients)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16, help="connections per process")
    parser.add_argument("--processes", type=int, default=1, help="client processes")
    args = parser.parse_args()

    token = generate_token()
    with tempfile.TemporaryDirectory(prefix="bench-standin-") as tmp:
        server = StandinProcess(Path(tmp) / "data", token).start()
        try:
            print(
                f"stand-in pid {server.pid} at {server.url}; client={args.client}, "
                f"{args.processes} process(es) x {args.connections} connections, "
                f"{args.reports} reports per run, {args.runs} runs; "
                f"Python {sys.version.split()[0]}",
                flush=True,
            )
            context = multiprocessing.get_context("spawn")
            with context.Pool(args.processes) as pool:
                process = psutil.Process(server.pid)
                results = [
                    one_run(args, server.url, token, pool, process) for _ in range(args.runs)
                ]
        finally:
            code = server.stop()
    rates = [rate for rate, _ in results]
    median = statistics.median(rates)
    spread = (max(rates) - min(rates)) / median * 100
    cpu = statistics.median(seconds for _, seconds in results)
    print(
        f"median {median:,.0f} reports/s (min {min(rates):,.0f}, max {max(rates):,.0f}, "
        f"spread {spread:.0f}% of median); server exit code {code}"
    )
    # The server is one asyncio thread (plus the SQLite writer): CPU per report says what
    # one free core sustains, whatever else the shared machine was doing during the runs.
    print(
        f"server CPU median {cpu * 1e6:.0f} us/report = capacity of about "
        f"{1 / cpu:,.0f} reports/s per core"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
