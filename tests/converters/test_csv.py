"""Built-in CSV / key-value log converter: layouts, mapping from config, strictness."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywats_client.converters import ConverterManager
from pywats_client.converters.builtin import CsvConverter
from pywats_client.core.config import ClientConfig
from pywats_client.errors import ConversionError
from tests.converters.support import FUZZ, check_never_raises_other, mutated, sample, values


def convert(path: Path, **settings: Any) -> list[dict[str, Any]]:
    config = ClientConfig(converters={"csv": settings} if settings else {})
    manager = ConverterManager(config, plugin_dirs=[], entry_points=False)
    assert manager.load() == []
    conversion = manager.convert(path)
    assert conversion.converter == "csv"
    return conversion.reports


def configured(**settings: Any) -> CsvConverter:
    converter = CsvConverter()
    converter.configure(settings)
    return converter


def test_steps_layout_with_key_value_header_and_default_names() -> None:
    (report,) = convert(sample("csv/fct_pcba200_steps.csv"))
    assert (report["pn"], report["sn"], report["rev"], report["result"]) == (
        "PCBA-200",
        "P200-2603-00412",
        "D",
        "F",
    )
    assert report["machineName"] == "fct-line1"
    assert report["uut"] == {"user": "kari"}
    assert report["start"].startswith("2026-03-06T10:22:41")  # local time of the station
    assert report["miscInfos"] == [{"description": "Program", "text": "fct_pcba200 v2.3"}]
    steps = report["root"]["steps"]
    assert [(s["name"], s["stepType"], s["status"]) for s in steps] == [
        ("Supply current", "ET_NLT", "P"),
        ("VBUS", "ET_NLT", "P"),
        ("3V3 rail", "ET_NLT", "F"),
        ("Ethernet link", "ET_PFT", "P"),
        ("MAC address", "ET_SVT", "P"),
    ]
    assert steps[2]["numericMeas"][0] == {
        "value": 3.12,
        "unit": "V",
        "compOp": "GELE",
        "lowLimit": 3.2,
        "highLimit": 3.4,
        "status": "F",
    }
    assert steps[0]["totTime"] == 0.31
    assert report["root"]["status"] == "F"


def test_a_german_station_configured_by_field_and_column_names(tmp_path: Path) -> None:
    (report,) = convert(
        sample("csv/sensor_x2_de.csv"),
        fields={"sn": "Seriennummer", "pn": "Teilenummer", "result": "Ergebnis", "start": "Datum"},
        columns={
            "group": "Gruppe",
            "name": "Prüfschritt",
            "value": "Messwert",
            "unit": "Einheit",
            "status": "Bewertung",
        },
        decimal_comma=True,
    )
    assert (report["pn"], report["sn"], report["result"]) == ("SENSOR-X2", "AB-77-00093", "P")
    assert report["start"] == "2026-03-07T07:58:12+01:00"
    groups = report["root"]["steps"]
    assert [(g["name"], g["stepType"], g["status"]) for g in groups] == [
        ("Versorgung", "SequenceCall", "P"),
        ("Sensor", "SequenceCall", "P"),
    ]
    strom = groups[0]["steps"][0]
    assert strom["numericMeas"][0]["value"] == 12.4 and strom["numericMeas"][0]["unit"] == "mA"
    assert groups[1]["steps"][0]["numericMeas"][0]["lowLimit"] == -2
    assert groups[1]["steps"][1]["stepType"] == "ET_PFT"


def test_units_layout_makes_one_report_per_row_with_limits_from_config() -> None:
    reports = convert(
        sample("csv/burnin_units.csv"),
        skip_columns=["Slot"],
        limits={"Current": {"low": 0.38, "high": 0.44, "unit": "A"}},
    )
    assert [(r["sn"], r["pn"], r["result"]) for r in reports] == [
        ("LS30-001201", "LED-STRIP-30", "P"),
        ("LS30-001202", "LED-STRIP-30", "P"),
        ("LS30-001203", "LED-STRIP-30", "F"),
        ("LS30-001204", "LED-STRIP-30", "P"),
    ]
    assert all(r["start"] == "2026-03-08T06:00:00+01:00" for r in reports)
    third = reports[2]["root"]["steps"]
    assert [(s["name"], s["stepType"], s["status"]) for s in third] == [
        ("Current", "ET_NLT", "F"),
        ("Temperature", "ET_NLT", "P"),
        ("Flicker", "ET_PFT", "F"),
    ]
    assert third[0]["numericMeas"][0]["unit"] == "A"
    assert [s["name"] for s in reports[3]["root"]["steps"]] == ["Current", "Flicker"]
    assert len({r["id"] for r in reports}) == 4


def test_a_key_value_log_with_patterns_and_field_mapping(tmp_path: Path) -> None:
    source = tmp_path / "station7.log"
    shutil.copy(sample("csv/station7.log"), source)
    (report,) = convert(source, patterns=["*.log"], fields={"start": "TestTime"})
    assert (report["pn"], report["sn"], report["rev"], report["result"]) == (
        "POWER-MODULE-55",
        "PM-55-0009121",
        "A",
        "P",
    )
    assert report["start"] == "2026-03-09T11:04:55+01:00"
    assert report["miscInfos"] == [{"description": "Firmware", "text": "5.0.2"}]
    assert [s["status"] for s in report["root"]["steps"]] == ["P", "P"]


def test_defaults_fill_fields_the_file_lacks(tmp_path: Path) -> None:
    (report,) = convert(
        sample("csv/missing_serial.csv"),
        defaults={"sn": "UNKNOWN-SN", "process_code": 40},
    )
    assert (report["sn"], report["processCode"]) == ("UNKNOWN-SN", 40)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "Part Number,P\nStep,Value\nV,1\n",
            "no serial number found; set converters.csv.fields.sn",
        ),
        ("Serial Number,S\nPart Number,P\nResult,Maybe\n", "line 3: result: 'Maybe' is not"),
        ("SN,S\nPN,P\nStep,Value,Status\nV,1,green\n", "line 4: 'green' is not a status"),
        ("SN,S\nPN,P\nStep,Value,Low\nV,abc,1\n", "is not a number, but the row has limits"),
        ("SN,S\nPN,P\nStep,Value\n,1\n", "line 4: the step has no name"),
        ("SN,S\nPN,P\nStep,Value\nV,\n", "has neither a value nor a status"),
        ("SN,S\nPN,P\nStep,Value\nV,1,2,3\n", "line 4: more cells than the header"),
        ("SN,S\nSN,T\nPN,P\n", "line 2: 'SN' gives the report's sn, already given on line 1;"),
        (
            "SN,S\nPN,P\nOperator,Ann\nTester,Bo\n",
            "line 4: 'Tester' gives the report's operator, already given on line 3 as 'Operator'",
        ),
        ("SN,S\nPN,P\nthree,cells,here\nStep,Value\n", "line 3: expected a 'Key,Value' line"),
        ("SN,S\nPN,P\nDate,tomorrow\n", "line 3: start: 'tomorrow' is not a date-time"),
        ("Slot,Serial Number,Current\n1,,0.4\n", "line 2: the unit has no serial number"),
        ("Slot,Serial Number,Current\n", "has a header but no unit rows"),
        ("\n\n", "holds no data"),
    ],
)
def test_problems_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "r.csv"
    path.write_text(text)
    with pytest.raises(ConversionError) as caught:
        CsvConverter().convert(path)
    assert message in str(caught.value)
    assert caught.value.converter == "csv"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"delimiter": ";;"}, "one character"),
        ({"fields": {"serial": "SN"}}, "converters.csv.fields.serial: unknown"),
        ({"columns": {"value": 3}}, "a name or list of names"),
        ({"limits": {"V": [1, 2]}}, "an object with low, high, unit, comp"),
        ({"decimal_comma": "yes"}, "must be bool"),
    ],
)
def test_settings_are_checked_when_loaded(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CsvConverter().configure(settings)


def test_date_format_setting_reads_local_date_styles(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("SN,S\nPN,P\nDate,07.03.2026 14:02\n")
    (report,) = configured(date_format="%d.%m.%Y %H:%M").convert(path)
    assert report.start.replace(tzinfo=None).isoformat() == "2026-03-07T14:02:00"


FIELD_NAMES = [
    "Serial Number",
    "SN",
    "Part Number",
    "PN",
    "Revision",
    "Result",
    "Date",
    "Operator",
    "Process Code",
    "Station",
    "Execution Time",
    "Comment",
    "Other",
]
COLUMN_NAMES = [
    "Step",
    "Value",
    "Low",
    "High",
    "Unit",
    "Status",
    "Comp",
    "Time",
    "Group",
    "Comment",
    "Extra",
]
GOOD_FIELDS = {
    "Result": "PASS",
    "Date": "2026-03-07T07:58:12+01:00",
    "Process Code": "10",
    "Execution Time": "1.5",
}
GOOD_CELLS = {
    "Step": "V",
    "Value": "1.5",
    "Low": "1",
    "High": "2",
    "Unit": "V",
    "Status": "PASS",
    "Comp": "GELE",
    "Time": "0.1",
    "Group": "G",
}


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """Steps- or units-layout CSV from the format's vocabulary, then a few cells spoilt."""
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    rows: list[list[str]] = []
    for name in draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=6)):
        rows.append([name, GOOD_FIELDS.get(name, "X-1")])
    if draw(st.booleans()):
        columns = ["Step", *draw(st.lists(st.sampled_from(COLUMN_NAMES), max_size=6))]
        rows.append(columns)
        for _ in range(draw(st.integers(0, 5))):
            rows.append([GOOD_CELLS.get(c, "x") for c in columns])
    else:
        columns = ["Serial Number", *draw(st.lists(st.sampled_from([*FIELD_NAMES, "M1", "M2"])))]
        rows.append(columns)
        for index in range(draw(st.integers(0, 4))):
            rows.append([f"SN-{index}", *(GOOD_FIELDS.get(c, "1.5") for c in columns[1:])])
    for _ in range(draw(st.integers(0, 3))):
        if not rows:
            break
        row = draw(st.sampled_from(rows))
        index = draw(st.integers(0, len(row)))
        if index == len(row):
            row.append(draw(values()))
        elif draw(st.booleans()):
            row[index] = draw(values())
        else:
            del row[index:]
    text = "\n".join(delimiter.join(row) for row in rows)
    return text.encode(draw(st.sampled_from(["utf-8", "cp1252", "utf-16"])), "replace")


SETTINGS = st.sampled_from(
    [
        {},
        {"decimal_comma": True},
        {"layout": "units", "limits": {"M1": {"low": 1, "high": 2}}},
        {"layout": "steps", "date_format": "%Y-%m-%d"},
        {"delimiter": ";", "defaults": {"pn": "P", "sn": "S"}},
    ]
)


@FUZZ
@given(data=csv_files(), settings=SETTINGS)
def test_fuzz_structured(
    data: bytes, settings: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.getbasetemp() / "s.csv"
    check_never_raises_other(configured(**settings), path, data)


@FUZZ
@given(data=mutated(sample("csv/fct_pcba200_steps.csv").read_bytes()))
def test_fuzz_mutated_sample(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(CsvConverter(), tmp_path_factory.getbasetemp() / "m.csv", data)


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_bytes(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(CsvConverter(), tmp_path_factory.getbasetemp() / "b.csv", data)
