"""Fault injection for the stand-in's ``/api`` endpoints (down, slow, 5xx, 429, 400).

A :class:`FaultPlan` is what a test asks for (``POST /standin/faults``); the
:class:`FaultInjector` decides, request by request, what the plan does to it.
Faults never touch ``/standin/`` endpoints, so a test can always look at the
server and switch a fault off again.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["FaultDecision", "FaultInjector", "FaultPlan", "FaultSpecError"]

#: Keys ``POST /standin/faults`` accepts, with what each one means (for error messages).
FAULT_KEYS = {
    "status": "HTTP status (400-599) to answer instead of handling the request",
    "rate": "probability 0..1 that a request gets the fault (default 1)",
    "retry_after": "seconds for a Retry-After header on the injected status",
    "down": "true: close each connection without an answer (a network error)",
    "latency_ms": "delay in milliseconds before each answer",
    "count": "apply the fault to this many requests, then clear it",
    "paths": "path prefixes the fault applies to (default ['/api/'])",
    "message": "text of the injected error's Message",
    "seed": "random seed, for repeatable rates",
    "new_only": (
        "true: a status fault spares report submissions whose id the server already "
        "holds (a real server does not reject a report it accepted before)"
    ),
}

_MAX_LATENCY_MS = 600_000.0


class FaultSpecError(ValueError):
    """A fault request is malformed; the message says which key and what is allowed."""


def _number(data: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FaultSpecError(f"{key}: expected a number, got {value!r}")
    if not low <= value <= high:
        raise FaultSpecError(f"{key}: {value!r} is out of range {low:g}..{high:g}")
    return float(value)


def _integer(data: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultSpecError(f"{key}: expected an integer, got {value!r}")
    if not low <= value <= high:
        raise FaultSpecError(f"{key}: {value!r} is out of range {low}..{high}")
    return value


@dataclass(frozen=True)
class FaultPlan:
    """The faults in force. The default plan injects nothing."""

    status: int | None = None
    rate: float = 1.0
    retry_after: float | None = None
    down: bool = False
    latency_ms: float = 0.0
    count: int | None = None
    paths: tuple[str, ...] = ("/api/",)
    message: str | None = None
    seed: int | None = None
    new_only: bool = False

    @property
    def active(self) -> bool:
        return self.down or self.status is not None or self.latency_ms > 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["paths"] = list(self.paths)
        return {key: value for key, value in data.items() if value is not None}

    @classmethod
    def from_json(cls, data: Any) -> FaultPlan:
        """Validate a ``POST /standin/faults`` body (``{}`` = no faults)."""
        if not isinstance(data, dict):
            raise FaultSpecError(f"expected a JSON object such as {{'status': 503}}, got {data!r}")
        unknown = sorted(set(data) - set(FAULT_KEYS))
        if unknown:
            raise FaultSpecError(
                f"unknown fault key(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(FAULT_KEYS)}"
            )
        status = _integer(data, "status", 400, 599)
        retry_after = _number(data, "retry_after", 0, 86_400)
        down = data.get("down", False)
        if not isinstance(down, bool):
            raise FaultSpecError(f"down: expected true or false, got {down!r}")
        if down and status is not None:
            raise FaultSpecError(
                "down and status cannot be combined: a closed connection has no status"
            )
        if retry_after is not None and status is None:
            raise FaultSpecError("retry_after needs a status (usually 429 or 503)")
        paths = data.get("paths", ["/api/"])
        if (
            not isinstance(paths, list)
            or not paths
            or not all(isinstance(p, str) and p.startswith("/api/") for p in paths)
        ):
            raise FaultSpecError(f"paths: expected a list of prefixes under /api/, got {paths!r}")
        message = data.get("message")
        if message is not None and not isinstance(message, str):
            raise FaultSpecError(f"message: expected a string, got {message!r}")
        new_only = data.get("new_only", False)
        if not isinstance(new_only, bool):
            raise FaultSpecError(f"new_only: expected true or false, got {new_only!r}")
        if new_only and status is None:
            raise FaultSpecError("new_only needs a status (usually 400)")
        rate = _number(data, "rate", 0, 1)
        return cls(
            status=status,
            rate=1.0 if rate is None else rate,
            retry_after=retry_after,
            down=down,
            latency_ms=_number(data, "latency_ms", 0, _MAX_LATENCY_MS) or 0.0,
            count=_integer(data, "count", 1, 1_000_000_000),
            paths=tuple(paths),
            message=message,
            seed=_integer(data, "seed", 0, 2**63),
            new_only=new_only,
        )


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one request: wait, then drop it, answer ``status``, or go on."""

    delay: float = 0.0
    drop: bool = False
    status: int | None = None
    retry_after: float | None = None
    message: str | None = None
    new_only: bool = False

    @property
    def fails(self) -> bool:
        return self.drop or self.status is not None


@dataclass
class FaultInjector:
    """Applies the current :class:`FaultPlan` and counts what it did."""

    plan: FaultPlan = field(default_factory=FaultPlan)
    injected: int = 0
    delayed: int = 0
    _left: int | None = field(default=None, init=False)
    _random: random.Random = field(default_factory=random.Random, init=False)

    def __post_init__(self) -> None:
        self.set(self.plan)

    def set(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._left = plan.count
        self._random = random.Random(plan.seed)

    def clear(self) -> None:
        self.set(FaultPlan())

    def reset_counts(self) -> None:
        self.injected = 0
        self.delayed = 0

    def decide(self, path: str) -> FaultDecision | None:
        """The fault for a request to ``path``, or ``None`` to handle it normally."""
        plan = self.plan
        if not plan.active or not path.startswith(plan.paths):
            return None
        fires = (plan.down or plan.status is not None) and self._random.random() < plan.rate
        delay = plan.latency_ms / 1000.0
        if not fires and not delay:
            return None
        if self._left is not None:
            self._left -= 1
            if self._left <= 0:
                self.clear()
        if delay:
            self.delayed += 1
        if not fires:
            return FaultDecision(delay=delay)
        self.injected += 1
        return FaultDecision(
            delay=delay,
            drop=plan.down,
            status=plan.status,
            retry_after=plan.retry_after,
            message=plan.message,
            new_only=plan.new_only,
        )
