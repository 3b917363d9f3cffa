"""What one queue file holds: the report and its envelope, and how it is checked.

The file is ``{"envelope": {...}, "report": {...WSJF}}``. The envelope keeps
what the uploader and an operator need (id, where the report came from,
attempts, next attempt, last error); every write replaces the whole file
atomically, so attempt counts survive restarts. A file that does not parse or
does not match this shape is *corrupt* and is quarantined by the store.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal

__all__ = [
    "CorruptQueueFile",
    "Envelope",
    "NewReport",
    "QueueItem",
    "QueueState",
    "decode_item",
    "encode_item",
    "epoch_to_iso",
    "iso_to_epoch",
]

QueueState = Literal["pending", "failed", "sent"]


class CorruptQueueFile(ValueError):
    """A queue file cannot be used; the message says why (goes into the reason file)."""


def epoch_to_iso(seconds: float) -> str:
    """Wall time as ISO 8601 UTC with a ``Z`` (how times are stored in queue files)."""
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def iso_to_epoch(text: str) -> float:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


@dataclass(frozen=True)
class NewReport:
    """A converted report to put into the queue (``report["id"]`` is required)."""

    report: dict[str, Any]
    source_name: str
    source_sha256: str
    converter: str

    @property
    def id(self) -> str:
        value = self.report.get("id")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(
                f"report from {self.source_name!r} has no 'id'; the converter manager must "
                "assign one before it is queued"
            )
        return value


@dataclass(frozen=True)
class Envelope:
    """Bookkeeping of one queued report. Times are ISO 8601 UTC strings."""

    id: str
    source_name: str
    source_sha256: str
    converter: str
    created_at: str
    attempts: int = 0
    next_attempt_at: str | None = None
    last_error: str | None = None
    last_status: int | None = None
    failed_at: str | None = None

    def updated(self, **changes: Any) -> Envelope:
        return replace(self, **changes)


_REQUIRED_STR = ("id", "source_name", "source_sha256", "converter", "created_at")
_OPTIONAL_STR = ("next_attempt_at", "last_error", "failed_at")


@dataclass(frozen=True)
class QueueItem:
    """One report read from its queue file."""

    name: str
    state: QueueState
    envelope: Envelope
    report: dict[str, Any] = field(repr=False)

    @property
    def id(self) -> str:
        return self.envelope.id


def encode_item(envelope: Envelope, report: dict[str, Any]) -> bytes:
    # A file name that is not valid UTF-8 (bytes a Linux tester wrote, a lone
    # surrogate on Windows) is carried as a JSON \uXXXX escape, which reads back
    # as the same name, instead of stopping the station.
    return json.dumps(
        {"envelope": asdict(envelope), "report": report},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8", "backslashreplace")


def _envelope_from(data: Any) -> Envelope:
    if not isinstance(data, dict):
        raise CorruptQueueFile("'envelope' is missing or not an object")
    for key in _REQUIRED_STR:
        if not isinstance(data.get(key), str):
            raise CorruptQueueFile(f"envelope key {key!r} is missing or not a string")
    for key in _OPTIONAL_STR:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise CorruptQueueFile(f"envelope key {key!r} is not a string")
    attempts = data.get("attempts", 0)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        raise CorruptQueueFile(f"envelope key 'attempts' is not a count: {attempts!r}")
    status = data.get("last_status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        raise CorruptQueueFile(f"envelope key 'last_status' is not an HTTP status: {status!r}")
    return Envelope(
        id=data["id"],
        source_name=data["source_name"],
        source_sha256=data["source_sha256"],
        converter=data["converter"],
        created_at=data["created_at"],
        attempts=attempts,
        next_attempt_at=data.get("next_attempt_at"),
        last_error=data.get("last_error"),
        last_status=status,
        failed_at=data.get("failed_at"),
    )


def decode_item(raw: bytes) -> tuple[Envelope, dict[str, Any]]:
    """Parse and check one queue file; :class:`CorruptQueueFile` says what is wrong."""
    if not raw:
        raise CorruptQueueFile("file is empty (0 bytes)")
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise CorruptQueueFile(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise CorruptQueueFile(
            f"not valid JSON (truncated or damaged?): {exc.msg} at byte {exc.pos} of {len(raw)}"
        ) from None
    if not isinstance(data, dict):
        raise CorruptQueueFile("top level is not a JSON object")
    envelope = _envelope_from(data.get("envelope"))
    report = data.get("report")
    if not isinstance(report, dict):
        raise CorruptQueueFile("'report' is missing or not an object")
    if report.get("id") != envelope.id:
        raise CorruptQueueFile(
            f"report id {report.get('id')!r} does not match envelope id {envelope.id!r}"
        )
    return envelope, report
