"""What one running instance reports about itself (heartbeat payload, status)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["ClientSnapshot", "ConnectionState", "UploadState", "parked_fields"]

ConnectionState = Literal["unknown", "connected", "disconnected", "unauthorized", "offline"]
UploadState = Literal[
    "uploading",
    "idle",
    "paused",
    "unauthorized",
    "disabled",
    "backoff",
    "disconnected",
    "offline",
    "stopped",
]


@dataclass
class ClientSnapshot:
    """Counters and states of one instance at one moment.

    Counters are totals since the worker started; ``pending``/``failed`` are
    the queue's current sizes. Plain data (JSON-able with :meth:`to_dict`) so it
    can cross a process pipe and land in ``status.json``. Holds no secrets.
    """

    files_seen: int = 0
    converted: int = 0
    errored: int = 0
    queued: int = 0
    uploaded: int = 0
    rejected: int = 0
    pending: int = 0
    failed: int = 0
    in_backoff: int = 0
    in_flight: int = 0
    #: Queue files that could not be read, set aside in ``<queue>/quarantine``.
    quarantined: int = 0
    #: Source files parked in the Error folder(s) with their reasons, as the last
    #: rescan counted them: not converted, so not in WATS. None until counted.
    in_error: int | None = None
    #: Each Error folder holding any of them, with how many.
    error_folders: dict[str, int] = field(default_factory=dict)
    connection: ConnectionState = "unknown"
    connection_since: float | None = None
    server_version: str | None = None
    uploads: UploadState = "idle"
    intake_paused: bool = False
    backpressure: bool = False
    abandoned_conversions: int = 0
    #: The upload helper process while one runs (a busy station's HTTP work).
    upload_helper_pid: int | None = None
    last_error: str | None = None
    #: Wall-clock epoch seconds when ``last_error`` first showed: a bad file an
    #: hour ago is history, not what the station is doing now.
    last_error_at: float | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClientSnapshot:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def parked_fields(parked: Mapping[Path, int] | None) -> tuple[int | None, dict[str, int]]:
    """``in_error`` and ``error_folders`` from the count in each Error folder
    (None: not known)."""
    if parked is None:
        return None, {}
    return sum(parked.values()), {str(folder): n for folder, n in parked.items() if n}
