"""The demo's live view: one row per station, refreshed from ``list_instances``.

A worker's counters restart from zero with each new process, so the view adds
up the last counters seen from every pid of a station (:class:`Tally`): the
numbers then read "since the demo started", across the kill and restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from pywats_client.core.snapshot import ClientSnapshot
from pywats_client.supervisor import InstanceStatus

__all__ = ["COUNTERS", "Progress", "Tally", "render_view"]

#: Snapshot counters that only grow within one worker process.
COUNTERS = ("converted", "errored", "queued", "uploaded")

STATE_STYLES = {
    "running": "bold green",
    "starting": "cyan",
    "backoff": "yellow",
    "crash-looping": "bold red",
    "fatal": "bold red",
    "stopping": "magenta",
    "not-running": "dim",
}


class Tally:
    """Per station, the sum over its worker processes of each one's last counters."""

    def __init__(self) -> None:
        self._seen: dict[str, dict[int, dict[str, int]]] = {}

    def update(self, station: str, pid: int | None, snapshot: ClientSnapshot | None) -> None:
        if pid is None or snapshot is None:
            return
        last = self._seen.setdefault(station, {}).setdefault(pid, dict.fromkeys(COUNTERS, 0))
        for name in COUNTERS:
            last[name] = max(last[name], int(getattr(snapshot, name)))

    def total(self, station: str, counter: str) -> int:
        return sum(c[counter] for c in self._seen.get(station, {}).values())

    def pids(self, station: str) -> list[int]:
        return list(self._seen.get(station, {}))


@dataclass(frozen=True)
class Progress:
    """The line above the table."""

    dropped: int
    planned: int
    accepted: int
    expected: int
    errored: int
    elapsed_s: float
    phase: str


def _cell(value: int | None) -> str:
    return "-" if value is None else str(value)


def render_view(
    statuses: Sequence[InstanceStatus],
    tally: Tally,
    formats: Mapping[str, Sequence[str]],
    in_error: Mapping[str, int],
    progress: Progress,
    events: Iterable[str],
) -> RenderableType:
    """The header, the station table and the latest events.

    ``in_error`` counts the files in each station's Error folder (what the
    station's counters say can miss the last moments of a killed worker).
    """
    header = Text.assemble(
        ("pywats-client demo", "bold"),
        f" · {progress.phase} · dropped {progress.dropped}/{progress.planned} files"
        f" · server accepted {progress.accepted}/{progress.expected} reports"
        f" · in Error {progress.errored} · {progress.elapsed_s:.0f} s",
    )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, header_style="bold")
    table.add_column("station", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for name in ("pid", "converted", "queued", "pending", "uploaded", "errors", "restarts"):
        table.add_column(name, justify="right", no_wrap=True)
    for status in statuses:
        state = status.state.value
        table.add_row(
            Text.assemble(status.name, "\n", (" ".join(formats.get(status.name, ())), "dim")),
            Text(state, style=STATE_STYLES.get(state, "")),
            _cell(status.pid),
            str(tally.total(status.name, "converted")),
            str(tally.total(status.name, "queued")),
            _cell(status.pending),
            str(tally.total(status.name, "uploaded")),
            str(in_error.get(status.name, 0)),
            str(status.restarts),
        )
    lines = [Text(f"  {line}", style="dim") for line in events]
    return Group(header, table, *lines)
