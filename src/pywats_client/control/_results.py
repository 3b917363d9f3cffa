"""Typed answers of the control channel (what a GUI or the CLI gets back)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pywats_client.supervisor._states import State

__all__ = ["ControlResult", "InstanceResult", "SupervisorInfo"]


def _state(value: Any) -> State:
    try:
        return State(value)
    except ValueError:
        return State.NOT_RUNNING


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class InstanceResult:
    """One instance after a command.

    ``done`` is True when the instance reached what the command asked for
    (``running`` after start/restart, with a new pid after restart; no process
    after stop; uploads confirmed paused/resumed by the worker). When it is
    False, ``note`` says why (still starting, crashed, disabled...).
    ``paused`` is the operator's choice (kept while stopped); ``uploads`` is
    what the worker last reported (``paused``, ``uploading``, ``idle``...), None
    without a running worker. ``previous_state``/``previous_pid`` are from just
    before the command.
    """

    name: str
    state: State
    done: bool
    pid: int | None = None
    paused: bool = False
    uploads: str | None = None
    enabled: bool = True
    restarts: int = 0
    last_error: str | None = None
    note: str | None = None
    previous_state: State | None = None
    previous_pid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["state"] = self.state.value
        out["previous_state"] = self.previous_state.value if self.previous_state else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstanceResult:
        previous = data.get("previous_state")
        return cls(
            name=str(data.get("name", "")),
            state=_state(data.get("state")),
            done=bool(data.get("done")),
            pid=_opt_int(data.get("pid")),
            paused=bool(data.get("paused")),
            uploads=_opt_str(data.get("uploads")),
            enabled=bool(data.get("enabled", True)),
            restarts=_opt_int(data.get("restarts")) or 0,
            last_error=_opt_str(data.get("last_error")),
            note=_opt_str(data.get("note")),
            previous_state=_state(previous) if previous is not None else None,
            previous_pid=_opt_int(data.get("previous_pid")),
        )


@dataclass(frozen=True)
class ControlResult:
    """The answer to start/stop/restart/pause/resume/reload: one entry per instance."""

    command: str
    instances: tuple[InstanceResult, ...]

    @property
    def ok(self) -> bool:
        """Every instance reached what the command asked for."""
        return all(i.done for i in self.instances)

    def __getitem__(self, name: str) -> InstanceResult:
        for inst in self.instances:
            if inst.name == name:
                return inst
        raise KeyError(name)

    def __iter__(self) -> Iterator[InstanceResult]:
        return iter(self.instances)

    def __len__(self) -> int:
        return len(self.instances)

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "ok": self.ok,
            "instances": [i.to_dict() for i in self.instances],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ControlResult:
        raw = data.get("instances")
        items = raw if isinstance(raw, list) else []
        return cls(
            command=str(data.get("command", "")),
            instances=tuple(InstanceResult.from_dict(i) for i in items if isinstance(i, dict)),
        )


@dataclass(frozen=True)
class SupervisorInfo:
    """What :meth:`SupervisorControl.ping` learns about the running supervisor."""

    pid: int
    registry: Path
    started_at: datetime
    instances: tuple[str, ...]
    version: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "registry": str(self.registry),
            "started_at": self.started_at.isoformat(),
            "instances": list(self.instances),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SupervisorInfo:
        started = data.get("started_at")
        names = data.get("instances")
        return cls(
            pid=_opt_int(data.get("pid")) or 0,
            registry=Path(str(data.get("registry", ""))),
            started_at=datetime.fromtimestamp(
                float(started) if isinstance(started, (int, float)) else 0.0, tz=timezone.utc
            ),
            instances=tuple(n for n in names if isinstance(n, str))
            if isinstance(names, list)
            else (),
            version=str(data.get("version", "")),
        )
