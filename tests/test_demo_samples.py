"""The demo's sample generator: the stream it plans and the files it renders."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pywats_client._demo._samples import (
    ALL_KINDS,
    BAD_KIND,
    FAMILIES,
    PLACEHOLDERS,
    kinds_for_station,
    load_template,
    plan_files,
    render,
)
from pywats_client._demo._setup import station_config
from pywats_client.converters import ConverterManager
from pywats_client.errors import ConversionError

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone(timedelta(hours=1)))


def names(n: int) -> list[str]:
    return [f"station-{i + 1}" for i in range(n)]


def test_default_stream_has_one_bad_and_one_slow_file_and_every_format() -> None:
    planned = plan_files(40, names(2), seed=1, now=NOW)
    assert len(planned) == 40
    assert [f.kind for f in planned if not f.valid] == [BAD_KIND.name]
    assert sum(f.slow for f in planned) == 1
    assert {f.kind for f in planned if f.valid} == {k.name for k in ALL_KINDS}
    assert len({f.sn for f in planned}) == 40
    assert len({(f.station, f.name) for f in planned}) == 40


def test_each_station_gets_only_the_formats_it_takes() -> None:
    planned = plan_files(60, names(3), seed=2, now=NOW)
    for position, station in enumerate(names(3)):
        own = {k.name for k in kinds_for_station(position, 3)}
        kinds = {f.kind for f in planned if f.station == station}
        assert kinds, f"{station} got no files"
        assert kinds - {BAD_KIND.name} <= own
    # stations 1 and 3 share a family, so both get files of it
    assert kinds_for_station(0, 3) == kinds_for_station(2, 3) == FAMILIES[0]
    assert kinds_for_station(0, 1) == ALL_KINDS


def test_bad_file_goes_to_a_station_with_the_wsjf_converter() -> None:
    planned = plan_files(10, names(2), seed=3, now=NOW)
    bad = next(f for f in planned if not f.valid)
    assert bad.station == "station-1"
    assert "corrupt" in bad.name


def test_small_streams() -> None:
    assert [(f.valid, f.slow) for f in plan_files(1, names(2), now=NOW)] == [(True, False)]
    two = plan_files(2, names(2), now=NOW)
    assert sum(not f.valid for f in two) == 1 and not any(f.slow for f in two)
    three = plan_files(3, names(2), now=NOW)
    assert sum(not f.valid for f in three) == 1 and sum(f.slow for f in three) == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="count"):
        plan_files(0, names(1))
    with pytest.raises(ValueError, match="station"):
        plan_files(3, [])


def test_same_seed_same_stream() -> None:
    assert plan_files(20, names(2), seed=7, now=NOW) == plan_files(20, names(2), seed=7, now=NOW)


@settings(max_examples=40, deadline=None)
@given(count=st.integers(1, 150), stations=st.integers(1, 6), seed=st.integers(0, 2**32))
def test_plan_invariants(count: int, stations: int, seed: int) -> None:
    planned = plan_files(count, names(stations), seed=seed, now=NOW)
    assert [f.index for f in planned] == list(range(count))
    assert len({f.sn for f in planned}) == count
    assert sum(not f.valid for f in planned) == (1 if count >= 2 else 0)
    assert sum(f.slow for f in planned) == (1 if count >= 3 else 0)
    assert not any(f.slow and not f.valid for f in planned)
    for f in planned:
        assert f.sn in f.content
        assert not any(p in f.content for p in PLACEHOLDERS)
        assert f.station in names(stations)


def test_render_fills_every_placeholder() -> None:
    text = render(
        "{{SN}} {{START}} {{START_UTC}} {{UUID}}",
        sn="X-1",
        start=NOW,
        report_uuid=uuid.UUID(int=5),
    )
    assert text == (
        "X-1 2026-03-10T12:00:00.000+01:00 2026-03-10T11:00:00.000Z "
        "00000000-0000-0000-0000-000000000005"
    )
    with pytest.raises(ValueError, match="timezone"):
        render("{{SN}}", sn="x", start=datetime(2026, 1, 1), report_uuid=uuid.UUID(int=1))


@pytest.mark.parametrize("kind", [*ALL_KINDS, BAD_KIND], ids=lambda k: k.name)
def test_every_template_ships_with_the_package(kind: object) -> None:
    assert "{{SN}}" in load_template(kind.template)  # type: ignore[attr-defined]


def test_every_rendered_sample_converts_on_its_station(tmp_path: Path) -> None:
    """Each valid file is exactly one report with its serial number, by the right converter;
    the bad file is refused with a reason; other stations' converters are off."""
    planned = plan_files(14, names(2), seed=4, now=NOW)
    managers = {}
    for position, station in enumerate(names(2)):
        kinds = kinds_for_station(position, 2)
        config = station_config(station, kinds, "http://127.0.0.1:1", "token")
        manager = ConverterManager(config, entry_points=False)
        assert manager.load() == []
        managers[station] = (manager, {k.name: k.converter for k in kinds})
    for f in planned:
        path = tmp_path / f.station / f.name
        path.parent.mkdir(exist_ok=True)
        path.write_text(f.content, encoding="utf-8")
        manager, converter_of = managers[f.station]
        if not f.valid:
            with pytest.raises(ConversionError, match="result"):
                manager.convert(path)
            continue
        conversion = manager.convert(path)
        assert conversion.converter == converter_of[f.kind]
        assert [r["sn"] for r in conversion.reports] == [f.sn]
        assert conversion.reports[0]["result"] == "P"


def test_other_families_formats_are_not_taken(tmp_path: Path) -> None:
    csv = next(f for f in plan_files(10, names(1), now=NOW) if f.kind == "csv")
    config = station_config("station-1", FAMILIES[0], "http://127.0.0.1:1", "token")
    manager = ConverterManager(config, entry_points=False)
    manager.load()
    path = tmp_path / csv.name
    path.write_text(csv.content, encoding="utf-8")
    assert manager.select(path) is None
