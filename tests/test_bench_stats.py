"""The statistics and the table of ``python -m bench`` (bench/_stats.py)."""

from __future__ import annotations

import pytest
from bench._stats import Figure, Summary, Target, format_value, percentile, render_table
from hypothesis import given
from hypothesis import strategies as st

values = st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=50)


def test_percentile_is_nearest_rank() -> None:
    kills = [float(n) for n in range(1, 21)]  # 20 kills
    assert percentile(kills, 50) == 10.0
    assert percentile(kills, 99) == 20.0  # p99 of 20 values is the worst one
    assert percentile([5.0], 99) == 5.0
    with pytest.raises(ValueError):
        percentile([], 50)


@given(values, st.floats(0, 100))
def test_percentile_is_one_of_the_values_and_monotone(data: list[float], q: float) -> None:
    p = percentile(data, q)
    assert p in data
    assert percentile(data, 0) <= p <= percentile(data, 100) == max(data)


@given(values)
def test_summary_orders_its_figures(data: list[float]) -> None:
    s = Summary.of(data)
    assert s.n == len(data)
    assert s.min <= s.q1 <= s.median <= s.q3 <= s.max


def test_targets_judge_the_median_or_every_value() -> None:
    rates = Figure("e2e", "rate", "/s", [400.0, 520.0, 600.0], Target(">=", 500))
    assert rates.verdict(judged=True) == "PASS"  # median 520
    assert rates.verdict(judged=False) == "-"
    rss = Figure("fp", "rss", "MiB", [50.0, 50.0, 61.0], Target("<=", 60, on="max"))
    assert rss.verdict(judged=True) == "MISS"  # one worker over the limit
    assert Figure("x", "no target", "ms", [1.0]).verdict(judged=True) == ""


def test_table_has_one_header_and_a_row_per_figure() -> None:
    figures = [
        Figure("disk", "raw", "/s", [1200.0, 1500.0, 1300.0]),
        Figure("disk", "ratio", "ratio", [0.8], Target(">=", 0.5)),
        Figure("restart", "p99", "ms", [700.0], Target("<=", 1500), note="20 kills"),
    ]
    lines = render_table(figures, judged=True).splitlines()
    header = "scenario figure median min - max n target verdict"
    assert lines[0].split() == header.split()
    assert set(lines[1]) <= {"-", " "}
    assert len(lines) == 2 + len(figures)
    assert "1,300/s" in lines[2] and "1,200 - 1,500/s" in lines[2]
    assert lines[3].endswith("PASS") and ">= 50%" in lines[3]
    assert "p99 [20 kills]" in lines[4] and "(1 value)" in lines[4]


def test_format_value_units() -> None:
    assert format_value(1234.4, "/s") == "1,234/s"
    assert format_value(0.405, "ratio") == "40%"
    assert format_value(51.25, "MiB") == "51.2 MiB"
    assert format_value(188.44, "s") == "188.4 s"
    assert format_value(0.5, "%") == "0.50%"
    assert format_value(184.0, "us") == "184 us"
    assert format_value(4.126, "ms") == "4.13 ms"
    assert format_value(98.34, "ms") == "98.3 ms"
    assert format_value(1033.2, "ms") == "1,033 ms"
