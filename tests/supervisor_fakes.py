"""A fake worker runtime for supervisor tests (``PYWATS_TEST_WORKER_RUNTIME``).

Same surface as :mod:`pywats_client.core.client` (``WATSClient``,
``acquire_instance_lock``) without watching, converting or uploading, so the
supervisor's process handling is tested fast and deterministically. Each
fake client counts heartbeat snapshots in ``uploaded`` and writes its pid to
``<queue>/fake-started`` (one line per start) so tests can see restarts.
"""

from __future__ import annotations

import os
from pathlib import Path

from pywats_client.core._instance_lock import acquire_instance_lock
from pywats_client.core.config import ClientConfig
from pywats_client.core.snapshot import ClientSnapshot

__all__ = ["WATSClient", "acquire_instance_lock"]

MODULE = __name__


class WATSClient:
    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.paused = False
        self.intake_stopped = False
        self.calls = 0
        self.restart_required: str | None = None

    async def start(self) -> None:
        queue = self.config.queue_dir
        queue.mkdir(parents=True, exist_ok=True)
        with open(queue / "fake-started", "a", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")
        (queue / "pending").mkdir(exist_ok=True)

    async def stop(self, timeout: float = 10.0) -> None:
        with open(self.config.queue_dir / "fake-stopped", "a", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")

    def snapshot(self) -> ClientSnapshot:
        self.calls += 1
        return ClientSnapshot(
            uploaded=self.calls,
            pending=_count(self.config.queue_dir / "pending"),
            connection="connected",
            uploads="paused" if self.paused else "idle",
        )

    def pause_uploads(self) -> None:
        self.paused = True

    def resume_uploads(self) -> None:
        self.paused = False

    def stop_intake(self) -> None:
        self.intake_stopped = True


def _count(folder: Path) -> int:
    try:
        return sum(1 for p in folder.iterdir() if p.suffix == ".json")
    except FileNotFoundError:
        return 0
