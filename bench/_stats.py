"""Figures, their statistics and targets, and the one table ``python -m bench`` prints.

Every scenario returns :class:`Figure` objects: a name, a unit and the values
of its repeats (or of its samples, when one run yields many). The table shows
the median and the spread (min-max) of those values; a target, when the issue
sets one, is judged on the median and shown beside it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Figure", "Summary", "Target", "format_value", "percentile", "render_table"]

Unit = Literal["/s", "ms", "us", "s", "MiB", "ratio", "%"]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation): p99 of 20 values is the largest."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


@dataclass(frozen=True)
class Summary:
    """Median, extremes and quartiles of a figure's values."""

    n: int
    median: float
    min: float
    max: float
    q1: float
    q3: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("a figure needs at least one value")
        if len(values) == 1:
            q1 = q3 = values[0]
        else:
            q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        return cls(
            n=len(values),
            median=statistics.median(values),
            min=min(values),
            max=max(values),
            q1=q1,
            q3=q3,
        )


@dataclass(frozen=True)
class Target:
    """What the issue asks of a figure: its median (or its largest value) ``>=``/``<=`` a limit."""

    op: Literal[">=", "<="]
    limit: float
    #: "max": every value must meet it (e.g. the RSS of each of 16 workers).
    on: Literal["median", "max"] = "median"

    def met(self, summary: Summary) -> bool:
        value = summary.max if self.on == "max" else summary.median
        return value >= self.limit if self.op == ">=" else value <= self.limit


@dataclass
class Figure:
    """One line of the table: ``values`` are the repeats (or samples) it summarises."""

    scenario: str
    name: str
    unit: Unit
    values: list[float]
    target: Target | None = None
    #: What the values are when they are not plain repeats ("per 10 s of the drain").
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> Summary:
        return Summary.of(self.values)

    def verdict(self, judged: bool) -> str:
        if self.target is None:
            return ""
        if not judged:
            return "-"
        return "PASS" if self.target.met(self.summary) else "MISS"

    def to_dict(self, judged: bool) -> dict[str, Any]:
        s = self.summary
        return {
            "scenario": self.scenario,
            "name": self.name,
            "unit": self.unit,
            "values": [round(v, 6) for v in self.values],
            "median": s.median,
            "min": s.min,
            "max": s.max,
            "q1": s.q1,
            "q3": s.q3,
            "n": s.n,
            "target": None if self.target is None else _target(self),
            "verdict": self.verdict(judged) or None,
            "note": self.note or None,
            **self.extra,
        }


def _significant(value: float) -> str:
    """Whole numbers from 100 up, else three significant digits (4.12 ms, 98.3 ms)."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


#: How each unit is shown: (the number, the suffix).
_FORMATS: dict[str, tuple[Callable[[float], str], str]] = {
    "/s": ("{:,.0f}".format, "/s"),
    "ms": (_significant, " ms"),
    "us": ("{:,.0f}".format, " us"),
    "s": ("{:,.1f}".format, " s"),
    "MiB": ("{:.1f}".format, " MiB"),
    "ratio": (lambda v: f"{v * 100:.0f}", "%"),
    "%": ("{:.2f}".format, "%"),
}


def format_value(value: float, unit: Unit) -> str:
    """A value as the table shows it (rates without decimals, ratios as percent)."""
    number, suffix = _FORMATS[unit]
    return number(value) + suffix


def _bare(value: float, unit: Unit) -> str:
    """The number of ``format_value`` without its unit (for the low end of a range)."""
    return _FORMATS[unit][0](value)


def _spread(figure: Figure) -> str:
    s = figure.summary
    if s.n == 1:
        return "(1 value)"
    return f"{_bare(s.min, figure.unit)} - {format_value(s.max, figure.unit)}"


def _target(figure: Figure) -> str:
    if figure.target is None:
        return ""
    text = f"{figure.target.op} {format_value(figure.target.limit, figure.unit)}"
    return f"max {text}" if figure.target.on == "max" else text


def render_table(figures: Sequence[Figure], judged: bool) -> str:
    """The table: scenario, figure, median, spread (min - max), n, target, verdict."""
    header = ("scenario", "figure", "median", "min - max", "n", "target", "verdict")
    rows = [header]
    for f in figures:
        name = f"{f.name} [{f.note}]" if f.note else f.name
        rows.append(
            (
                f.scenario,
                name,
                format_value(f.summary.median, f.unit),
                _spread(f),
                str(f.summary.n),
                _target(f),
                f.verdict(judged),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {2, 3, 4}  # numbers align right
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths).rstrip())
    return "\n".join(lines)
