"""Typed status of every instance, for the CLI and the GUI: :func:`list_instances`.

Works whether or not a supervisor runs. With one, it reads the supervisor's
``status.json`` (ages and uptimes advanced to now); without one (or with a
stale file left by a killed supervisor, detected by pid and process start
time) every enabled instance is ``not-running`` - or ``running``, unsupervised,
when started by hand with ``pywats-client run`` - its queue counts are read
cheaply from its queue folders, and the last error the supervisor knew is kept
with its time. Nothing here starts a thread or a process, and no secret is ever
read into the result.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pywats_client._logging import instance_log_path, registry_log_dir
from pywats_client.core._worker_pid import running_worker_pid
from pywats_client.core.config import ClientConfig
from pywats_client.core.registry import (
    DEFAULT_STATE_DIR,
    InstanceEntry,
    Registry,
    SupervisorSettings,
)
from pywats_client.core.snapshot import ClientSnapshot, parked_fields
from pywats_client.errors import ConfigError, FatalError, RegistryError
from pywats_client.services._post_actions import count_parked_in
from pywats_client.supervisor._states import State
from pywats_client.supervisor._statusfile import STATUS_NAME, read_status

__all__ = [
    "InstanceStatus",
    "StatusReport",
    "SupervisorStatus",
    "list_instances",
    "log_dir_in_use",
    "status_report",
]

#: A recorded process start time within this many seconds is the same process
#: (guards against a reused pid making a dead supervisor look alive).
_CREATE_TIME_TOLERANCE = 1.0
_RUNNING_STATES = (State.STARTING, State.RUNNING, State.PAUSED, State.STOPPING)


@dataclass(frozen=True)
class SupervisorStatus:
    """The supervisor of a registry, as far as can be told from outside."""

    running: bool
    pid: int | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    metrics_url: str | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class InstanceStatus:
    """One station instance: process state, health and queue counts.

    ``state`` is a :class:`State` (a ``str`` enum: compare with ``"running"``).
    ``pending``/``failed`` are None when the queue folder cannot be read.
    ``in_error`` counts the source files parked in the station's Error folder(s)
    with their reasons (not converted, so not in WATS until someone acts),
    ``error_folders`` how many in each folder holding any. A running station
    counts them at each rescan; without one they are counted from the folders.
    None when not known (not counted yet, or a folder cannot be read).
    ``last_error`` is the newest of the process-level error (crash, config,
    hang) and the station's own last error (a bad file, an outage), shown since
    ``last_error_at``; with no supervisor running, the last one it recorded.
    ``config_problem`` is set while the station runs on an old config because
    its edited one was refused (it would be ``fatal`` at its next restart).
    ``supervised`` is False when no supervisor runs: a ``running`` instance is
    then one started by hand (``pywats-client run``), with its ``pid``.
    Counters (``converted``, ``errored``, ``uploaded``) count since the worker
    process started.
    """

    name: str
    state: State
    enabled: bool
    supervised: bool
    pid: int | None = None
    started_at: datetime | None = None
    uptime_s: float | None = None
    restarts: int = 0
    last_exit: int | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    config_problem: str | None = None
    last_heartbeat_at: datetime | None = None
    heartbeat_age_s: float | None = None
    next_restart_at: datetime | None = None
    rss: int | None = None
    cpu: float | None = None
    pending: int | None = None
    failed: int | None = None
    in_error: int | None = None
    error_folders: dict[str, int] = field(default_factory=dict)
    converted: int = 0
    errored: int = 0
    uploaded: int = 0
    connection: str = "unknown"
    uploads: str | None = None
    config_path: Path | None = None
    queue_path: Path | None = None
    log_path: Path | None = None
    snapshot: ClientSnapshot | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (times as ISO 8601, paths as strings)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, State):
                value = value.value
            elif isinstance(value, ClientSnapshot):
                value = value.to_dict()
            out[f.name] = value
        return out


@dataclass(frozen=True)
class StatusReport:
    """``registry_error``: the registry file is invalid now (an edit went wrong); the
    report then shows the stations the running supervisor still runs, as it last
    wrote them."""

    supervisor: SupervisorStatus
    instances: list[InstanceStatus]
    registry_error: str | None = None


def list_instances(registry: Path | str | Registry) -> list[InstanceStatus]:
    """Every instance of ``registry`` (a path to instances.toml or a loaded Registry).

    Raises :class:`~pywats_client.errors.RegistryError` if the registry itself
    is invalid (:func:`status_report` then still shows what a running
    supervisor runs); a bad instance config only shows in that instance's
    ``last_error``.
    """
    report = status_report(registry)
    if report.registry_error is not None:
        raise RegistryError(report.registry_error)
    return report.instances


def status_report(registry: Path | str | Registry) -> StatusReport:
    """The supervisor's state and every instance's (see :func:`list_instances`).

    An invalid registry file raises :class:`~pywats_client.errors.RegistryError`,
    unless a supervisor still runs the last valid version of it: then the report
    shows those stations and says what is wrong in ``registry_error``, so that a
    slip while editing does not leave the operator blind.
    """
    registry_error: str | None = None
    if not isinstance(registry, Registry):
        path = Path(registry)
        try:
            registry = Registry.load(path, check_configs=False)
        except RegistryError as exc:
            running = _registry_run_by_supervisor(path)
            if running is None:
                raise
            registry, registry_error = running, str(exc)
    document = read_status(registry.state_dir / STATUS_NAME)
    now = time.time()
    sup = _supervisor(document)
    records: dict[str, dict[str, Any]] = {}
    elapsed = 0.0
    if document is not None:
        records = {
            r["name"]: r
            for r in document.get("instances", [])
            if isinstance(r, dict) and isinstance(r.get("name"), str)
        }
    if sup.running and document is not None:
        updated = document.get("supervisor", {}).get("updated_at")
        elapsed = max(0.0, now - updated) if isinstance(updated, (int, float)) else 0.0
    log_dir = log_dir_in_use(registry, document)
    instances = [
        _instance(registry, entry, records.get(entry.name), sup.running, elapsed, log_dir)
        for entry in registry.instances
    ]
    return StatusReport(supervisor=sup, instances=instances, registry_error=registry_error)


def _registry_run_by_supervisor(path: Path) -> Registry | None:
    """The registry as the supervisor running ``path`` last wrote it into status.json.

    Only the default state folder can be found without reading the registry.
    """
    path = path.resolve()
    state_dir = path.parent / DEFAULT_STATE_DIR
    try:
        document = read_status(state_dir / STATUS_NAME)
    except FatalError:
        return None
    info = (document or {}).get("supervisor")
    recorded = info.get("registry") if isinstance(info, dict) else None
    if not isinstance(recorded, str) or os.path.normcase(recorded) != os.path.normcase(path):
        return None
    if not _supervisor(document).running:
        return None
    entries = []
    for record in (document or {}).get("instances", []):
        if not isinstance(record, dict) or record.get("removed"):
            continue
        try:
            entries.append(
                InstanceEntry(
                    name=record["name"],
                    config=Path(record["config_path"]),
                    enabled=bool(record.get("enabled", True)),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return Registry(
        path=path,
        supervisor=SupervisorSettings(state_dir=state_dir),
        instances=tuple(entries),
    )


def log_dir_in_use(registry: Registry, document: dict[str, Any] | None = None) -> Path:
    """Where the last supervisor of ``registry`` wrote its logs, else where one would.

    Without ``[supervisor] log_dir`` the folder is per user, and a supervisor
    running as a service account writes into that account's profile: the
    operator's own default would point elsewhere.
    """
    if document is None:
        document = read_status(registry.state_dir / STATUS_NAME)
    info = (document or {}).get("supervisor")
    recorded = info.get("log_dir") if isinstance(info, dict) else None
    return Path(recorded) if isinstance(recorded, str) and recorded else registry_log_dir(registry)


def _dt(value: Any) -> datetime | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    return None


def _pid_alive(pid: Any, create_time: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        if isinstance(create_time, (int, float)):
            return bool(abs(proc.create_time() - create_time) < _CREATE_TIME_TOLERANCE)
        return bool(proc.is_running())
    except psutil.Error:
        return False


def _supervisor(document: dict[str, Any] | None) -> SupervisorStatus:
    info = document.get("supervisor") if document else None
    if not isinstance(info, dict):
        return SupervisorStatus(running=False)
    exited = bool(info.get("exited"))
    running = _pid_alive(info.get("pid"), info.get("create_time")) and not exited
    updated_at = _dt(info.get("updated_at"))
    last_error = _str(info.get("last_error"))
    if not running and not exited:
        seen = f" (last status {updated_at.isoformat(timespec='seconds')})" if updated_at else ""
        last_error = (
            f"the supervisor (pid {info.get('pid')}) ended without shutting down{seen}: killed, "
            "crashed or the PC lost power; its stations are not running until it is started again"
        )
    return SupervisorStatus(
        running=running,
        pid=int(info["pid"]) if running else None,
        started_at=_dt(info.get("started_at")),
        updated_at=updated_at,
        metrics_url=_str(info.get("metrics_url")) if running else None,
        last_error=last_error,
    )


def count_queue_files(folder: Path) -> int | None:
    """Report files (``*.json``) in a queue sub-folder; 0 if absent, None if unreadable."""
    try:
        with os.scandir(folder) as entries:
            return sum(
                1
                for e in entries
                if e.name.endswith(".json") and not e.name.startswith(".") and e.is_file()
            )
    except FileNotFoundError:
        return 0
    except OSError:
        return None


def _instance(
    registry: Registry,
    entry: InstanceEntry,
    record: dict[str, Any] | None,
    supervised: bool,
    elapsed: float,
    log_dir: Path,
) -> InstanceStatus:
    config: ClientConfig | None = None
    config_error: str | None = None
    try:
        config = registry.load_config(entry)
    except ConfigError as exc:
        config_error = str(exc)
    config_path = registry.config_path(entry)
    queue_dir = config.queue_dir if config is not None else _queue_dir_despite(config_path)
    base: dict[str, Any] = {
        "name": entry.name,
        "enabled": entry.enabled,
        "supervised": supervised,
        "config_path": config_path,
        "queue_path": queue_dir,
        "log_path": instance_log_path(entry.name, config=config, log_dir=log_dir),
    }
    snapshot: ClientSnapshot | None = None
    idle = State.NOT_RUNNING if entry.enabled else State.DISABLED
    if not supervised:
        by_hand = running_worker_pid(queue_dir) if queue_dir is not None else None
        state = State.RUNNING if by_hand is not None else idle
        last_error, last_error_at = (
            (config_error, None) if config_error else _last_error(record, _snapshot_of(record))
        )
        base.update(state=state, pid=by_hand, last_error=last_error, last_error_at=last_error_at)
    elif record is None:
        base.update(state=idle, last_error=config_error)
    else:
        state = _state(record.get("state"))
        snapshot = _snapshot_of(record)
        advance = elapsed if state in _RUNNING_STATES else 0.0
        hb_age = record.get("heartbeat_age_s")
        uptime = record.get("uptime_s")
        last_error, last_error_at = _last_error(record, snapshot)
        base.update(
            state=state,
            pid=record.get("pid"),
            started_at=_dt(record.get("started_at")),
            uptime_s=uptime + advance if isinstance(uptime, (int, float)) else None,
            restarts=int(record.get("restarts") or 0),
            last_exit=record.get("last_exit"),
            last_error=last_error,
            last_error_at=last_error_at,
            config_problem=_str(record.get("config_problem")),
            last_heartbeat_at=_dt(record.get("last_heartbeat_at")),
            heartbeat_age_s=hb_age + advance if isinstance(hb_age, (int, float)) else None,
            next_restart_at=_dt(record.get("next_restart_at")),
            rss=record.get("rss"),
            cpu=record.get("cpu"),
            snapshot=snapshot,
        )
    if snapshot is not None:
        base.update(
            pending=snapshot.pending,
            failed=snapshot.failed,
            converted=snapshot.converted,
            errored=snapshot.errored,
            uploaded=snapshot.uploaded,
            connection=snapshot.connection,
            uploads=snapshot.uploads,
            in_error=snapshot.in_error,
            error_folders=dict(snapshot.error_folders),
        )
        return InstanceStatus(**base)
    if queue_dir is not None:
        base.update(
            pending=count_queue_files(queue_dir / "pending"),
            failed=count_queue_files(queue_dir / "failed"),
        )
    if config is not None:  # what the station's rescan would count
        error_dirs = (config.error_dir_for(watch) for watch in config.watch_dirs)
        base["in_error"], base["error_folders"] = parked_fields(count_parked_in(error_dirs)[0])
    return InstanceStatus(**base)


def _queue_dir_despite(config_path: Path) -> Path | None:
    """The queue folder an invalid config names, if its ``queue_path`` can be read.

    A ``fatal`` station's queued reports are what its operator must see; the
    rest of the file may be wrong without hiding them.
    """
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return None
    default = ClientConfig.model_fields["queue_path"].default
    value = raw.get("queue_path", str(default)) if isinstance(raw, dict) else None
    if not isinstance(value, str) or not value.strip():
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else (config_path.resolve().parent / path).resolve()


def _snapshot_of(record: dict[str, Any] | None) -> ClientSnapshot | None:
    raw = record.get("snapshot") if record is not None else None
    return ClientSnapshot.from_dict(raw) if isinstance(raw, dict) and raw else None


def _last_error(
    record: dict[str, Any] | None, snapshot: ClientSnapshot | None
) -> tuple[str | None, datetime | None]:
    """The newer of the supervisor's error for the process and the station's own.

    A worker restarted after a hang must show the hang, not the bad file before
    it; an outage after a crash must show the outage. An error without a time
    (a status.json from before times were recorded) ranks oldest.
    """
    if record is None:
        return None, None
    candidates = [(_str(record.get("last_error")), record.get("last_error_at"))]
    if snapshot is not None:
        candidates.append((snapshot.last_error, snapshot.last_error_at))
    shown = [(text, at if isinstance(at, (int, float)) else 0.0) for text, at in candidates if text]
    if not shown:
        return None, None
    text, at = max(shown, key=lambda error: error[1])
    return text, _dt(at) if at else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _state(value: Any) -> State:
    try:
        return State(value)
    except ValueError:
        return State.NOT_RUNNING
