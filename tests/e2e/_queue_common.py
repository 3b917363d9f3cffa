"""Shared pieces of the queue end-to-end tests: valid reports, configs, a running uploader."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pywats_client.core import ClientConfig
from pywats_client.queue import NewReport
from pywats_client.services import ConnectionService, QueueService, WATSApiClient

NAMESPACE = uuid.UUID("6f1f3c2e-9a0b-4c55-8d0e-2b7f6a1d9e01")


def report_id(n: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"e2e-report-{n}"))


def make_report(n: int) -> dict[str, Any]:
    """A small valid WSJF UUT report with a fixed id per ``n``."""
    return {
        "type": "T",
        "id": report_id(n),
        "pn": "PSU-200",
        "sn": f"SN{n:07d}",
        "rev": "B",
        "result": "P",
        "processCode": 10,
        "machineName": "e2e-station",
        "start": "2026-03-02T09:15:00+01:00",
        "root": {
            "stepType": "SequenceCall",
            "name": "MainSequence",
            "status": "P",
            "steps": [
                {
                    "stepType": "ET_NLT",
                    "name": "Vout",
                    "status": "P",
                    "numericMeas": [{"value": 5.02, "unit": "V", "compOp": "LOG"}],
                }
            ],
        },
    }


def new_reports(numbers: range) -> list[NewReport]:
    return [NewReport(make_report(n), f"unit{n}.json", f"{n:064x}", "WATS WSJF") for n in numbers]


def write_config(folder: Path, url: str, token: str, **overrides: Any) -> Path:
    """An instance config file (owner-only, as the product writes them)."""
    settings: dict[str, Any] = {
        "instance_name": "e2e-station",
        "service_address": url,
        "api_token": token,
        "queue_path": "queue",
        "retry": {"initial_delay": 0.1, "max_delay": 1.0},
        "request_timeout": 10,
    }
    settings.update(overrides)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "station.json"
    ClientConfig.from_dict(settings).save(path)
    return path


def load(path: Path) -> ClientConfig:
    return ClientConfig.load(path)


@contextlib.asynccontextmanager
async def running_uploader(
    config: ClientConfig, *, unauthorized_retry: float = 60.0
) -> AsyncIterator[tuple[QueueService, ConnectionService]]:
    """API client + connection monitor + uploader, wired as the worker wires them."""
    api = WATSApiClient(config)
    conn = ConnectionService(config, api, retry_min=0.1, retry_max=0.5)
    queue = QueueService(
        config, api, connection=conn, unauthorized_retry=unauthorized_retry, helper_process=True
    )
    await conn.start()
    await queue.start()
    try:
        yield queue, conn
    finally:
        await queue.stop(timeout=10)
        await conn.stop()
        await api.aclose()


def ids_on_server(reports: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in reports]


def run(coro: Any, timeout: float = 120) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
