"""The demo's verdict: what was dropped against what the server holds and what errored.

Counting is by serial number (each dropped file carries its own): a valid file
whose serial number the server does not hold is *lost*; a serial number the
server holds under more than one report id is a *duplicate*. Resubmissions of
the same report id (at-least-once upload after a kill) are not duplicates: the
server replaces the report, and the demo shows them as ``resubmitted``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pywats_client._demo._samples import PlannedFile
from pywats_client._demo._setup import StationLayout
from pywats_client.services._post_actions import REASON_SUFFIX

__all__ = [
    "DemoSummary",
    "ErroredFile",
    "Kill",
    "StationSummary",
    "is_complete",
    "parse_reason",
    "read_errored",
    "summarize",
]


@dataclass(frozen=True)
class ErroredFile:
    """A file in a station's Error folder, with the reason the station wrote beside it."""

    station: str
    file: str
    reason: str
    expected: bool = False  # True for the deliberately bad file


@dataclass(frozen=True)
class Kill:
    """A worker the demo killed, and what it saw afterwards."""

    station: str
    pid: int
    after_files: int
    restarted_pid: int | None = None
    back_after_s: float | None = None


@dataclass(frozen=True)
class StationSummary:
    name: str
    formats: list[str]
    dropped: int
    accepted: int
    errored: int
    restarts: int


@dataclass(frozen=True)
class DemoSummary:
    """Everything ``pywats-client demo --json`` prints."""

    ok: bool
    files_dropped: int
    files_planned: int
    valid_files: int
    bad_files: int
    slow_files: int
    accepted: int
    lost: int
    duplicates: int
    resubmitted: int
    unexpected: int
    bad_errored: int
    errored: list[ErroredFile]
    lost_files: list[str]
    restarts: dict[str, int]
    kills: list[Kill]
    stations: list[StationSummary]
    timed_out: bool
    interrupted: bool
    elapsed_s: float
    folder: str | None
    server_url: str
    supervisor_pid: int | None = None
    worker_pids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_reason(text: str) -> str:
    """The ``reason:`` line of a reason file (its first line if it has none)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.lower().startswith("reason:"):
            return line.split(":", 1)[1].strip()
    return lines[0] if lines else "(empty reason file)"


def read_errored(stations: Iterable[StationLayout]) -> list[ErroredFile]:
    """Every file with a reason file in the stations' Error folders, sorted by name."""
    found: list[ErroredFile] = []
    for station in stations:
        try:
            reasons = sorted(station.error_dir.glob(f"*{REASON_SUFFIX}"))
        except OSError:
            continue
        for path in reasons:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue  # being written; the next look finds it
            name = path.name[: -len(REASON_SUFFIX)]
            found.append(ErroredFile(station.name, name, parse_reason(text)))
    return found


def summarize(
    planned: Sequence[PlannedFile],
    dropped: Sequence[PlannedFile],
    server_reports: Sequence[Mapping[str, Any]],
    errored: Sequence[ErroredFile],
    *,
    formats: Mapping[str, list[str]],
    restarts: Mapping[str, int],
    kills: Sequence[Kill] = (),
    timed_out: bool = False,
    interrupted: bool = False,
    elapsed_s: float = 0.0,
    folder: Path | None = None,
    server_url: str = "",
    supervisor_pid: int | None = None,
    worker_pids: Iterable[int] = (),
) -> DemoSummary:
    """Compare the dropped files with the server's reports and the Error folders.

    ``ok``: nothing lost, nothing doubled, and the run reached its end (not
    stopped by the deadline or by Ctrl+C).

    ``formats`` maps each station to the formats it takes; ``restarts`` is the
    supervisor's restart count per station.
    """
    valid = [f for f in dropped if f.valid]
    bad = [f for f in dropped if not f.valid]
    ids_by_sn: dict[str, set[str]] = {}
    resubmitted = 0
    for report in server_reports:
        sn = str(report.get("sn"))
        ids_by_sn.setdefault(sn, set()).add(str(report.get("id")))
        resubmitted += max(0, int(report.get("times_received") or 1) - 1)
    expected_sns = {f.sn for f in valid}
    lost_files = sorted(f.name for f in valid if f.sn not in ids_by_sn)
    duplicates = sum(len(ids) - 1 for ids in ids_by_sn.values())
    unexpected = sum(len(ids) for sn, ids in ids_by_sn.items() if sn not in expected_sns)
    bad_names = {(f.station, f.name) for f in bad}
    marked = [
        ErroredFile(e.station, e.file, e.reason, expected=(e.station, e.file) in bad_names)
        for e in errored
    ]
    bad_errored = sum(1 for e in marked if e.expected)
    stations = [
        StationSummary(
            name=name,
            formats=list(kinds),
            dropped=sum(1 for f in dropped if f.station == name),
            accepted=sum(1 for f in valid if f.station == name and f.sn in ids_by_sn),
            errored=sum(1 for e in marked if e.station == name),
            restarts=int(restarts.get(name, 0)),
        )
        for name, kinds in formats.items()
    ]
    lost = len(lost_files)
    return DemoSummary(
        ok=lost == 0 and duplicates == 0 and not timed_out and not interrupted,
        files_dropped=len(dropped),
        files_planned=len(planned),
        valid_files=len(valid),
        bad_files=len(bad),
        slow_files=sum(1 for f in dropped if f.slow),
        accepted=len(valid) - lost,
        lost=lost,
        duplicates=duplicates,
        resubmitted=resubmitted,
        unexpected=unexpected,
        bad_errored=bad_errored,
        errored=marked,
        lost_files=lost_files,
        restarts={k: int(v) for k, v in restarts.items()},
        kills=list(kills),
        stations=stations,
        timed_out=timed_out,
        interrupted=interrupted,
        elapsed_s=round(elapsed_s, 2),
        folder=str(folder) if folder is not None else None,
        server_url=server_url,
        supervisor_pid=supervisor_pid,
        worker_pids=sorted(worker_pids),
    )


def is_complete(
    dropped: Sequence[PlannedFile],
    planned_count: int,
    server_sns: set[str],
    errored: Sequence[ErroredFile],
) -> bool:
    """All files dropped, every valid one on the server, every bad one in Error."""
    if len(dropped) < planned_count:
        return False
    if any(f.valid and f.sn not in server_sns for f in dropped):
        return False
    in_error = {(e.station, e.file) for e in errored}
    return all((f.station, f.name) in in_error for f in dropped if not f.valid)
