"""Running one control request against the supervisor, and judging when it is done.

The supervisor applies a command at once (on its loop thread) but the
instance gets there over time: a restart stops the old worker, spawns a new
one and waits for it to be ready. :func:`execute` applies the command, then
polls the supervisor's records until every instance reached the command's
goal, failed on the way, or the request's ``wait`` ran out. All waiting
happens in the connection's thread; the supervisor's loop never waits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pywats_client._version import __version__
from pywats_client.control._protocol import Request
from pywats_client.errors import ConfigError

__all__ = ["ControlTarget", "Failure", "execute", "judge"]

#: Seconds between looks at the supervisor while waiting for instances to settle.
POLL_INTERVAL = 0.05
_RUNNING = ("running", "paused")
_GAVE_UP = ("fatal", "crash-looping")


class ControlTarget(Protocol):
    """What the control server needs from the supervisor (all thread-safe)."""

    registry_path: Path

    @property
    def shutting_down(self) -> bool: ...

    def records(self) -> list[dict[str, Any]]:
        """Each instance's status record (as in status.json) plus ``removed``."""

    def reload_now(self) -> str | None:
        """Re-read the registry now; why it was not applied, or None."""

    def start_instance(self, name: str) -> None: ...
    def stop_instance(self, name: str) -> None: ...
    def restart_instance(self, name: str) -> None: ...
    def pause_instance(self, name: str) -> None: ...
    def resume_instance(self, name: str) -> None: ...


class Failure(Exception):
    """The request cannot be done; becomes an error reply of ``kind``."""

    def __init__(self, kind: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.details = details


@dataclass
class _Tracked:
    name: str
    before: dict[str, Any]
    restarts_allowed: int  # restarts counter value that is still "ours"
    refused: str | None = None
    done: bool = False
    note: str | None = None


def execute(
    target: ControlTarget,
    request: Request,
    *,
    started_at: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Apply ``request``; the reply's ``result`` or :class:`Failure`."""
    if request.command == "ping":
        return {
            "pid": os.getpid(),
            "registry": str(target.registry_path),
            "started_at": started_at,
            "instances": [r["name"] for r in _live(target)],
            "version": __version__,
        }
    if target.shutting_down:
        raise Failure("refused", "the supervisor is shutting down; start it again first")
    if request.command == "reload":
        return _reload(target)
    records = {r["name"]: r for r in _live(target)}
    names = list(records) if request.all else list(request.names)
    unknown = [n for n in names if n not in records]
    if unknown:
        raise Failure(
            "unknown-instance",
            f"no instance named {', '.join(map(repr, unknown))}",
            names=unknown,
            known=sorted(records),
        )
    method = getattr(target, f"{request.command}_instance")
    tracked: list[_Tracked] = []
    for name in names:
        before = records[name]
        item = _Tracked(name, before, _restarts_allowed(request.command, before))
        tracked.append(item)
        if request.all and request.command in ("start", "restart") and not before["enabled"]:
            item.done, item.note = True, "disabled in the registry; skipped"
            continue
        try:
            method(name)
        except ConfigError as exc:  # e.g. start of a disabled instance
            item.refused = exc.problem
    deadline = clock() + request.wait
    while True:
        now_records = {r["name"]: r for r in target.records()}
        pending = False
        for item in tracked:
            if item.refused is not None or (item.done and item.note):
                continue
            record = now_records.get(item.name)
            item.done, item.note = judge(
                request.command, item.before, record, item.restarts_allowed
            )
            pending = pending or (not item.done and item.note is None)
        if not pending or clock() >= deadline:
            break
        sleep(POLL_INTERVAL)
    return {
        "command": request.command,
        "instances": [_result(item, now_records.get(item.name), request.wait) for item in tracked],
    }


def _live(target: ControlTarget) -> list[dict[str, Any]]:
    return [r for r in target.records() if not r.get("removed")]


def _restarts_allowed(command: str, before: dict[str, Any]) -> int:
    """The restarts count the command itself may cause (a planned restart counts one)."""
    restarts = int(before.get("restarts") or 0)
    if command == "restart" and before.get("pid") is not None:
        return restarts + 1
    if command == "start" and before.get("state") == "stopping":
        return restarts + 1
    return restarts


def judge(
    command: str, before: dict[str, Any], now: dict[str, Any] | None, restarts_allowed: int
) -> tuple[bool, str | None]:
    """(done, note): done when the goal is reached; a note alone means "gave up"."""
    if now is None:
        return False, "removed from the registry meanwhile"
    state, pid = now.get("state"), now.get("pid")
    beat = now.get("snapshot") or {}
    if command == "stop":
        return (pid is None and state != "stopping"), None
    if command in ("pause", "resume"):
        want = command == "pause"
        if bool(now.get("paused")) != want:
            return False, None
        if state not in _RUNNING or pid is None:
            return True, "not running; applies when it starts" if want else None
        confirmed = (beat.get("uploads") == "paused") == want
        return confirmed, None
    # start / restart
    if not now.get("enabled", True):
        return False, "disabled in the registry; set enabled = true first"
    new_process = command == "start" or pid != before.get("pid")
    if state in _RUNNING and pid is not None and new_process:
        return True, None
    if state in _GAVE_UP:
        return False, f"{state}: {now.get('last_error') or 'see its log'}"
    if int(now.get("restarts") or 0) > restarts_allowed and state == "backoff":
        return False, f"worker exited: {now.get('last_error') or 'see its log'}; retrying"
    return False, None


def _reload(target: ControlTarget) -> dict[str, Any]:
    before = {r["name"] for r in _live(target)}
    problem = target.reload_now()
    if problem is not None:
        raise Failure("refused", problem)
    instances = []
    for record in target.records():
        name = record["name"]
        note = None
        if record.get("removed"):
            note = "removed from the registry; stopping"
        elif name not in before:
            note = "added"
        instances.append(_shape(record, done=True, note=note))
    return {"command": "reload", "instances": instances}


def _result(item: _Tracked, record: dict[str, Any] | None, wait: float) -> dict[str, Any]:
    note = item.note
    if item.refused is not None:
        item.done, note = False, item.refused
    elif not item.done and note is None:
        state = record.get("state") if record else "unknown"
        note = (
            f"requested; now {state} (not waited for)"
            if wait <= 0
            else f"still {state} after {wait:g} s; see 'pywats-client logs {item.name}'"
        )
    shaped = _shape(record or item.before, done=item.done, note=note)
    shaped["previous_state"] = item.before.get("state")
    shaped["previous_pid"] = item.before.get("pid")
    return shaped


def _shape(record: dict[str, Any], *, done: bool, note: str | None) -> dict[str, Any]:
    return {
        "name": record.get("name"),
        "state": record.get("state"),
        "done": done,
        "pid": record.get("pid"),
        "paused": bool(record.get("paused")),
        "uploads": (record.get("snapshot") or {}).get("uploads"),
        "enabled": bool(record.get("enabled", True)),
        "restarts": record.get("restarts") or 0,
        "last_error": record.get("last_error"),
        "note": note,
    }
