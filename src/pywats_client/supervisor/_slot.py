"""What the supervisor keeps per instance: entry, lifecycle, worker handle, last heartbeat."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pywats_client.core.registry import InstanceEntry
from pywats_client.supervisor._handle import WorkerHandle
from pywats_client.supervisor._states import Lifecycle, Phase, State

__all__ = ["FileFingerprint", "Slot", "fingerprint"]


@dataclass(frozen=True)
class FileFingerprint:
    """Cheap change detection (mtime, size) confirmed by a content hash."""

    mtime_ns: int
    size: int
    sha256: str

    def same_stat(self, mtime_ns: int, size: int) -> bool:
        return self.mtime_ns == mtime_ns and self.size == size


def fingerprint(path: Path, previous: FileFingerprint | None = None) -> FileFingerprint | None:
    """Fingerprint of ``path`` (None if unreadable); reuses ``previous`` if the stat matches."""
    try:
        st = path.stat()
        if previous is not None and previous.same_stat(st.st_mtime_ns, st.st_size):
            return previous
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
    return FileFingerprint(st.st_mtime_ns, st.st_size, digest)


@dataclass
class Slot:
    """One registry entry under supervision."""

    entry: InstanceEntry
    config_path: Path
    lifecycle: Lifecycle
    log_path: Path
    queue_path: Path | None = None
    config_print: FileFingerprint | None = None
    handle: WorkerHandle | None = None
    started_wall: float | None = None
    heartbeat: dict[str, Any] | None = None
    exit_reason: str | None = None
    removed: bool = False
    #: Refused because another instance uses the same queue folder: retried when
    #: any config changes, since fixing either side resolves it.
    queue_clash: bool = False
    #: The lifecycle's last error and the wall-clock time it first showed.
    _error_seen: tuple[str | None, float | None] = field(default=(None, None), init=False)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def state(self) -> State:
        lc = self.lifecycle
        if lc.phase is Phase.STOPPED and not self.entry.enabled:
            return State.DISABLED
        return lc.state

    def record(self, now: float, wall: float) -> dict[str, Any]:
        """This instance's entry in status.json (no secrets)."""
        lc = self.lifecycle
        alive = self.handle is not None
        beat = self.heartbeat if alive else None
        if lc.last_error != self._error_seen[0]:
            self._error_seen = (lc.last_error, wall if lc.last_error else None)
        restart_in = (
            lc.restart_at - now if lc.phase is Phase.BACKOFF and lc.restart_at is not None else None
        )
        return {
            "name": self.name,
            "state": self.state.value,
            "enabled": self.entry.enabled,
            "pid": self.handle.pid if self.handle is not None else None,
            "started_at": self.started_wall if alive else None,
            "uptime_s": _round(lc.uptime(now)),
            "restarts": lc.restarts,
            "last_exit": lc.last_exit,
            "last_error": lc.last_error,
            "last_error_at": self._error_seen[1],
            "config_problem": lc.config_problem,
            "last_heartbeat_at": beat.get("ts") if beat else None,
            "heartbeat_age_s": _round(now - lc.last_beat if lc.last_beat is not None else None),
            "next_restart_at": wall + max(0.0, restart_in) if restart_in is not None else None,
            "rss": beat.get("rss") if beat else None,
            "cpu": beat.get("cpu") if beat else None,
            "paused": lc.paused,
            "crash_looping": lc.policy.crash_looping,
            "config_path": str(self.config_path),
            "queue_path": str(self.queue_path) if self.queue_path else None,
            "log_path": str(self.log_path),
            "snapshot": beat.get("snapshot") if beat else None,
        }

    def on_spawned(self, handle: WorkerHandle) -> None:
        self.handle = handle
        self.started_wall = time.time()
        self.heartbeat = None
        self.exit_reason = None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
