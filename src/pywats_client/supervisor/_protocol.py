"""Messages between the supervisor and a worker (docs/internals.md).

Plain picklable dicts over two one-way ``multiprocessing`` pipes, so each end
of each pipe is used by exactly one thread (the worker reads commands in a
thread and sends heartbeats from its asyncio loop).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

__all__ = [
    "CONTROL_TYPES",
    "Heartbeat",
    "control",
    "heartbeat",
    "ready",
    "stopping",
]

ControlType = Literal["stop", "pause", "resume"]
CONTROL_TYPES: tuple[ControlType, ...] = ("stop", "pause", "resume")


class Heartbeat(TypedDict):
    type: Literal["heartbeat"]
    pid: int
    ts: float
    snapshot: dict[str, Any]
    rss: int
    cpu: float


def heartbeat(pid: int, ts: float, snapshot: dict[str, Any], rss: int, cpu: float) -> Heartbeat:
    return {"type": "heartbeat", "pid": pid, "ts": ts, "snapshot": snapshot, "rss": rss, "cpu": cpu}


def ready() -> dict[str, Any]:
    return {"type": "ready"}


def stopping(reason: str) -> dict[str, Any]:
    """The worker is about to exit; ``reason`` is shown as the last error if it failed."""
    return {"type": "stopping", "reason": reason}


def control(kind: ControlType) -> dict[str, Any]:
    return {"type": kind}
