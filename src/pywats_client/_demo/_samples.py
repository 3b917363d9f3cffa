"""The demo's sample files: which formats each station takes, and the stream of files to drop.

Templates (``samples/`` beside this module, shipped in the wheel) are real
result files of each format with ``{{SN}}``, ``{{START}}``, ``{{START_UTC}}``
and ``{{UUID}}`` placeholders. Every dropped file gets its own serial number
and start time, so every file is a distinct report: the demo can then count,
per serial number, what the server accepted and prove nothing was lost or
doubled.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from importlib import resources

__all__ = [
    "ALL_KINDS",
    "BAD_KIND",
    "FAMILIES",
    "PlannedFile",
    "SampleKind",
    "kinds_for_station",
    "load_template",
    "plan_files",
    "render",
]

PLACEHOLDERS = ("{{SN}}", "{{START}}", "{{START_UTC}}", "{{UUID}}")


@dataclass(frozen=True)
class SampleKind:
    """One sample format: its template, the converter that must take it, its file suffix."""

    name: str
    label: str
    template: str
    suffix: str
    converter: str
    prefix: str


WSJF = SampleKind("wsjf", "WATS WSJF JSON", "psu200_final.json", ".json", "wsjf", "PSU200")
WSXF = SampleKind("wsxf", "WATS WSXF XML", "pcba100_ict.xml", ".xml", "wsxf", "PCBA100")
TEXT = SampleKind(
    "wats-text", "WATS standard text", "pcba110_fct.txt", ".txt", "wats-text", "PCBA110"
)
CSV = SampleKind("csv", "CSV log", "pcba200_fct.csv", ".csv", "csv", "PCBA200")
JUNIT = SampleKind("junit", "JUnit XML", "motor_eol_junit.xml", ".xml", "junit", "MOTOR48")
ATML = SampleKind("atml", "ATML (TestStand)", "pcba300_atml.xml", ".xml", "atml", "PCBA300")
#: A WSJF file with a result code WATS does not know: the converter must refuse it.
BAD_KIND = SampleKind(
    "bad-wsjf", "WSJF, bad result code", "bad_result_code.json", ".json", "wsjf", "PSU200"
)

ALL_KINDS: tuple[SampleKind, ...] = (WSJF, CSV, WSXF, JUNIT, TEXT, ATML)
#: Station i takes family ``i % 2`` (a single station takes every format).
FAMILIES: tuple[tuple[SampleKind, ...], ...] = ((WSJF, WSXF, TEXT), (CSV, JUNIT, ATML))


@dataclass(frozen=True)
class PlannedFile:
    """One file the demo drops: where, under which name, and what the server must end up with."""

    index: int
    station: str
    name: str
    kind: str
    sn: str
    content: str
    valid: bool
    slow: bool = False


def kinds_for_station(position: int, stations: int) -> tuple[SampleKind, ...]:
    """The formats station number ``position`` (0-based) of ``stations`` takes."""
    if stations <= 1:
        return ALL_KINDS
    return FAMILIES[position % len(FAMILIES)]


@cache
def load_template(name: str) -> str:
    """A template's text, read from the package (works from an installed wheel)."""
    return (
        resources.files(__package__).joinpath("samples").joinpath(name).read_text(encoding="utf-8")
    )


def render(template: str, *, sn: str, start: datetime, report_uuid: uuid.UUID) -> str:
    """Fill a template's placeholders; ``start`` must be timezone-aware."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    utc = start.astimezone(timezone.utc).replace(tzinfo=None)
    return (
        template.replace("{{SN}}", sn)
        .replace("{{START_UTC}}", utc.isoformat(timespec="milliseconds") + "Z")
        .replace("{{START}}", start.isoformat(timespec="milliseconds"))
        .replace("{{UUID}}", str(report_uuid))
    )


def plan_files(
    count: int,
    stations: Sequence[str],
    *,
    seed: int = 0,
    now: datetime | None = None,
) -> list[PlannedFile]:
    """``count`` files spread over ``stations``: every format in turn, one bad, one slow.

    With ``count >= 2`` one file (about a quarter in) is deliberately bad; with
    ``count >= 3`` one (about a third in) is written slowly, to show a file is
    taken only once the tester has finished writing it. Serial numbers are
    unique, so each valid file is exactly one report on the server.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    if not stations:
        raise ValueError("at least one station is needed")
    rng = random.Random(seed)
    now = now or datetime.now().astimezone()
    takers: dict[str, list[str]] = {}
    for position, station in enumerate(stations):
        for kind in kinds_for_station(position, len(stations)):
            takers.setdefault(kind.name, []).append(station)
    bad_at = count // 4 if count >= 2 else -1
    slow_at = count // 3 if count >= 3 else -1
    if slow_at >= 0 and slow_at == bad_at:
        slow_at += 1
    turns: dict[str, int] = {}
    planned: list[PlannedFile] = []
    valid_seen = 0
    for index in range(count):
        if index == bad_at:
            kind = BAD_KIND
        elif index == slow_at:
            kind = TEXT
        else:
            kind = ALL_KINDS[valid_seen % len(ALL_KINDS)]
            valid_seen += 1
        owners = takers[WSJF.name if kind is BAD_KIND else kind.name]
        turn = turns.get(kind.name, 0)
        turns[kind.name] = turn + 1
        station = owners[turn % len(owners)]
        sn = f"{kind.prefix}-D{index + 1:04d}"
        start = now - timedelta(seconds=(count - index) * 37)
        content = render(
            load_template(kind.template),
            sn=sn,
            start=start,
            report_uuid=uuid.UUID(int=rng.getrandbits(128), version=4),
        )
        bad = kind is BAD_KIND
        name = f"{sn}-corrupt{kind.suffix}" if bad else f"{sn}{kind.suffix}"
        planned.append(
            PlannedFile(
                index=index,
                station=station,
                name=name,
                kind=kind.name,
                sn=sn,
                content=content,
                valid=not bad,
                slow=index == slow_at,
            )
        )
    return planned
