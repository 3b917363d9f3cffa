"""The stand-in server's capacity and the HTTP client's: what bounds the upload figures.

Small WSJF reports (about 600 bytes, a fresh id each) go to ``POST
/api/Report/WSJF`` of the stand-in (its own process, answering 200 only after
the report is committed to SQLite) from a client in another process, over
keep-alive HTTP/1.1:

* **minimal client**, 16 connections: a hand-written keep-alive loop that costs
  almost nothing, so the rate is the server's;
* **httpx**, 5 concurrent requests on one ``AsyncClient``: what the uploader's
  HTTP library sustains in one process (the uploader also sends 5 at a time);
* **upload helper**, 5 at a time through a real helper process
  (``UploadHelper``, as a busy worker uses it; the worker's side runs in this
  process): its rate and the helper's own CPU per upload.

Every repeat checks the server stored each report exactly once. The server's
CPU per report (user+system, psutil) says what one free core would sustain,
whatever else the shared machine did meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil

from bench._context import Context
from bench._procs import BenchError, cpu_seconds
from bench._reports import small_report
from bench._stats import Figure
from pywats_client.core import ClientConfig
from pywats_client.services._upload_helper import UploadHelper
from pywats_client.services.api_client import SUBMIT_PATH

NAME = "standin"
RAW_CONNECTIONS = 16
HTTPX_CONCURRENCY = 5


async def _raw_connection(url: str, token: str, bodies: Iterator[bytes]) -> None:
    """A minimal keep-alive HTTP/1.1 client: measures the server, not a client library."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST {SUBMIT_PATH} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    try:
        for body in bodies:
            writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
            header = await reader.readuntil(b"\r\n\r\n")
            if not header.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"the stand-in answered {header[:40]!r}")
            length = 0
            for line in header.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
    finally:
        writer.close()


async def _httpx_all(url: str, token: str, bodies: Iterator[bytes]) -> None:
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, headers=headers, trust_env=False) as client:

        async def loop() -> None:
            for body in bodies:
                (await client.post(SUBMIT_PATH, content=body)).raise_for_status()

        await asyncio.gather(*(loop() for _ in range(HTTPX_CONCURRENCY)))


def client_process(kind: str, url: str, token: str, count: int) -> float:
    """Send ``count`` reports (in a pool process); the seconds it took."""
    bodies = [json.dumps(small_report(f"SN{n:08d}")).encode() for n in range(count)]

    async def main() -> float:
        pending = iter(bodies)  # shared: each connection takes the next report
        began = time.perf_counter()
        if kind == "raw":
            await asyncio.gather(
                *(_raw_connection(url, token, pending) for _ in range(RAW_CONNECTIONS))
            )
        else:
            await _httpx_all(url, token, pending)
        return time.perf_counter() - began

    return asyncio.run(main())


def through_helper(url: str, token: str, count: int) -> tuple[float, float]:
    """``count`` reports through an upload helper: seconds, the helper's CPU seconds."""
    config = ClientConfig.from_dict(
        {
            "instance_name": "bench",
            "service_address": url,
            "api_token": token,
            "upload_helper": "always",
        }
    )
    bodies = [json.dumps(small_report(f"SN{n:08d}")).encode() for n in range(count)]

    async def main() -> tuple[float, float]:
        helper = UploadHelper(config)
        helper.start_soon()
        try:
            deadline = time.monotonic() + 60
            while not helper.usable:  # polled: the helper's start has no event to await
                if time.monotonic() > deadline:
                    raise BenchError("the upload helper did not start within 60 s")
                await asyncio.sleep(0.05)
            process = psutil.Process(helper.pid)
            pending = iter(bodies)
            cpu, began = cpu_seconds(process), time.perf_counter()

            async def lane() -> None:
                for body in pending:
                    await helper.submit(body)

            await asyncio.gather(*(lane() for _ in range(HTTPX_CONCURRENCY)))
            return time.perf_counter() - began, cpu_seconds(process) - cpu
        finally:
            await helper.close()

    return asyncio.run(main())


def run(ctx: Context) -> list[Figure]:
    count = ctx.size(5000, quick=300)
    server = ctx.server()
    process = psutil.Process(server.pid)
    results: dict[str, list[float]] = {
        "raw": [],
        "cpu": [],
        "httpx": [],
        "helper": [],
        "helper_cpu": [],
    }
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        for r in range(ctx.repeats(3)):
            for kind in ("raw", "httpx"):
                server.reset()
                cpu = cpu_seconds(process)
                seconds: Any = pool.apply(client_process, (kind, server.url, server.token, count))
                cpu = cpu_seconds(process) - cpu
                server.check_exactly_once(count)
                results[kind].append(count / seconds)
                if kind == "raw":
                    results["cpu"].append(cpu / count * 1e6)
            server.reset()
            seconds, helper_cpu = through_helper(server.url, server.token, count)
            server.check_exactly_once(count)
            results["helper"].append(count / seconds)
            results["helper_cpu"].append(helper_cpu / count * 1e6)
            ctx.log(
                f"repeat {r + 1}: minimal client {results['raw'][-1]:,.0f}/s "
                f"(server CPU {results['cpu'][-1]:.0f} us/report), "
                f"httpx {results['httpx'][-1]:,.0f}/s, "
                f"upload helper {results['helper'][-1]:,.0f}/s "
                f"(its CPU {results['helper_cpu'][-1]:.0f} us/upload)"
            )
    return [
        Figure(
            NAME, f"stand-in, minimal client, {RAW_CONNECTIONS} connections", "/s", results["raw"]
        ),
        Figure(NAME, "stand-in server CPU per report", "us", results["cpu"]),
        Figure(
            NAME, f"httpx client, {HTTPX_CONCURRENCY} concurrent, 1 process", "/s", results["httpx"]
        ),
        Figure(NAME, f"upload helper, {HTTPX_CONCURRENCY} at a time", "/s", results["helper"]),
        Figure(NAME, "upload helper's CPU per upload", "us", results["helper_cpu"]),
    ]
