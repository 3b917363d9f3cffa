"""Built-in WATS standard text converter (strict)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywats_client.converters import ConverterManager
from pywats_client.converters.builtin import WatsTextConverter
from pywats_client.errors import ConversionError
from tests.converters.support import FUZZ, check_never_raises_other, mutated, sample, values


def convert(relative: str) -> dict[str, object]:
    conversion = ConverterManager(builtins=True, entry_points=False).convert(sample(relative))
    assert conversion.converter == "wats-text"
    (report,) = conversion.reports
    return report


def test_the_reference_example_with_every_step_kind() -> None:
    report = convert("wats_text/sn000123_pass.txt")
    assert (report["pn"], report["sn"], report["rev"], report["result"]) == (
        "PCBA-100",
        "SN-000123",
        "B",
        "P",
    )
    assert (report["processCode"], report["processName"], report["machineName"]) == (
        10,
        "PCBA Test",
        "FCT-01",
    )
    assert report["start"] == "2026-03-01T09:15:00+01:00"
    assert report["uut"] == {
        "execTime": 12.7,
        "user": "ingrid",
        "batchSN": "LOT-2026-07",
        "fixtureId": "FCT-FIX-3",
        "testSocketIndex": 1,
    }
    assert report["subUnits"] == [
        {"partType": "Display", "pn": "DSP-7", "rev": "B", "sn": "DSP7-55102"},
        {"partType": "Battery", "pn": "BAT-2", "sn": "BAT2-0091"},
    ]
    assert report["miscInfos"] == [{"description": "LineSpeed", "text": "fast"}]
    root = report["root"]
    assert isinstance(root, dict)
    assert root["seqCall"] == {"name": "fct_pcba100.seq", "version": "4.1.0"}
    steps = root["steps"]
    assert [(s["stepType"], s["name"], s["status"]) for s in steps] == [
        ("Action", "Power on", "D"),
        ("SequenceCall", "Power", "P"),
        ("ET_PFT", "LED check", "P"),
        ("ET_SVT", "Bootloader", "P"),
        ("ET_NLT", "Temperature", "P"),
    ]
    power = steps[1]
    assert power["totTime"] == 1.1
    vcc, idle, rails = power["steps"]
    assert vcc["numericMeas"] == [
        {
            "value": 5.02,
            "unit": "V",
            "compOp": "GELE",
            "lowLimit": 4.9,
            "highLimit": 5.1,
            "status": "P",
        }
    ]
    assert idle["numericMeas"][0]["compOp"] == "LE" and idle["numericMeas"][0]["lowLimit"] == 0.1
    assert idle["status"] == "P"  # derived from the limit: no Status column
    assert rails["stepType"] == "ET_MNLT"
    assert [(m["name"], m["value"]) for m in rails["numericMeas"]] == [("3V3", 3.31), ("1V8", 1.79)]
    assert steps[4]["numericMeas"][0]["unit"] == "°C"
    assert steps[4]["reportText"] == "ambient probe"
    assert steps[3]["stringMeas"][0] == {
        "value": "BL-2.0.3",
        "compOp": "CASESENSIT",
        "limit": "BL-2.0.3",
        "status": "P",
    }


def test_a_failed_unit_from_an_old_cp1252_station_with_crlf() -> None:
    report = convert("wats_text/sn000124_fail_cp1252.txt")
    assert report["result"] == "F"
    assert report["uut"] == {
        "user": "Jørgen",
        "comment": "Prüfung nach Reparatur",
        "errorMessage": "VCC out of range",
        "errorCode": 17,
    }
    assert report["start"] == "2026-03-01T08:31:10Z"
    vcc = report["root"]["steps"][0]["steps"][0]  # type: ignore[index]
    assert (vcc["status"], vcc["errorCode"], vcc["errorMessage"]) == (
        "F",
        17,
        "VCC out of range",
    )
    assert report["root"]["steps"][1]["numericMeas"][0]["unit"] == "°C"  # type: ignore[index]


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("wats_text/unknown_uut_status.txt", "line 8: UUTStatus 'Maybe' is not Passed"),
        ("wats_text/non_numeric_value.txt", "line 7: Value: 'n/a' is not a number"),
        ("wats_text/truncated_while_writing.txt", "no --Step-Data-End--"),
    ],
)
def test_stricter_than_the_official_converter(relative: str, message: str) -> None:
    with pytest.raises(ConversionError) as caught:
        WatsTextConverter().convert(sample(relative))
    assert message in str(caught.value)
    assert caught.value.converter == "wats-text"


def _file(*steps: str, header: str = "SerialNumber\tS\nPartNumber\tP\n", tail: str = "") -> str:
    body = "\n".join(steps)
    return f"--Header-Start--\n{header}--Step-Data-Start--\n{body}\n--Step-Data-End--\n{tail}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_file("NumericLimitTest\tV\t\t1\t\t\t\t\tGreen"), "line 5: Status 'Green' is not"),
        (_file("Frobnicate\tV"), "unknown step type 'Frobnicate'"),
        (_file("SequenceCall\tA", "EndSequenceCall\tB"), "EndSequenceCall 'B' closes"),
        (_file("SequenceCall\tA"), "SequenceCall 'A' from line 5 has no EndSequenceCall"),
        (_file("EndSequenceCall\tA"), "EndSequenceCall without a SequenceCall"),
        (_file("NumericLimitTest\tV\t\t1\t0\t2\tBETWEEN"), "CompOperator 'BETWEEN' is not known"),
        (_file("NumericLimitTest\tV\t\tinf"), "is not a finite number"),
        (_file("NumericLimitTest\tV\t\t"), "has no Value"),
        (_file("PassFailTest\tLED\t\tmaybe"), "is not TRUE/FALSE"),
        (_file("PassFailTest\tLED"), "needs a Value or a Status"),
        (_file("NumericLimitTest\tV\t\t1\t\t\t\t\t\t-2"), "ExecTime '-2' is negative"),
        (_file(header="SerialNumber\tS\n"), "the header has no PartNumber"),
        (_file(header="SerialNumber\tS\nSerialNumber\tT\nPartNumber\tP\n"), "already given"),
        (_file(header="SerialNumber S\nPartNumber\tP\n"), "expected Key<TAB>Value"),
        (
            _file(header="SerialNumber\tS\nPartNumber\tP\nOperationTypeCode\tten\n"),
            "OperationTypeCode: 'ten' is not a whole number",
        ),
        (_file(tail="Operator\tx\n--UUT-End--\n"), "'Operator' in the footer"),
        (_file(tail="--UUT-End--\n--Header-Start--\n"), "one unit per file"),
        ("SerialNumber\tS\n", "expected --Header-Start-- first"),
        ("\n\n", "no --Header-Start-- found"),
    ],
)
def test_every_problem_names_its_line_or_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "r.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConversionError) as caught:
        WatsTextConverter().convert(path)
    assert message in str(caught.value)


def test_footer_overrides_header_and_missing_status_is_derived(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    path.write_text(
        _file(
            "NumericLimitTest\tV\t\t7\t0\t5",
            header="SerialNumber\tS\nPartNumber\tP\nUUTStatus\tPassed\n",
            tail="UUTStatus\tF\n--UUT-End--\n",
        )
    )
    (report,) = ConverterManager(builtins=True, entry_points=False).convert(path).reports
    assert report["result"] == "F"
    path.write_text(_file("NumericLimitTest\tV\t\t7\t0\t5"))
    (report,) = ConverterManager(builtins=True, entry_points=False).convert(path).reports
    assert report["result"] == "F" and report["root"]["steps"][0]["status"] == "F"


def test_only_files_with_the_header_marker_are_claimed(tmp_path: Path) -> None:
    converter = WatsTextConverter()
    assert converter.can_convert(sample("wats_text/sn000123_pass.txt")) == 0.95
    other = tmp_path / "notes.txt"
    other.write_text("shopping list")
    assert converter.can_convert(other) == 0.0


KINDS = [
    "SequenceCall",
    "EndSequenceCall",
    "NumericLimitTest",
    "MultipleNumericLimitTest",
    "PassFailTest",
    "StringValueTest",
    "ActionStep",
    "StepType",
]
HEADER_KEYS = [
    "SerialNumber",
    "PartNumber",
    "Revision",
    "OperationTypeCode",
    "StationName",
    "UUTStatus",
    "StartDateTime",
    "UTCStartDateTime",
    "ExecutionTime",
    "ErrorCode",
    "TestSocketIndex",
    "Subunit",
    "Comment",
    "Anything",
]
GOOD_HEADER = {
    "SerialNumber": "SN-1",
    "PartNumber": "P-1",
    "UUTStatus": "Passed",
    "StartDateTime": "2026-03-01T09:15:00+01:00",
    "OperationTypeCode": "10",
    "ExecutionTime": "1.5",
    "ErrorCode": "0",
    "TestSocketIndex": "1",
    "UTCStartDateTime": "2026-03-01T08:15:00Z",
    "Subunit": "D\tP\tS",
}


@st.composite
def wats_text_files(draw: st.DrawFn) -> bytes:
    """A well-formed unit from the format's grammar, then a few cells spoilt."""
    rows: list[list[str]] = [["--Header-Start--"]]
    rows += [["SerialNumber", "SN-1"], ["PartNumber", "P-1"]]
    for key in draw(st.lists(st.sampled_from(HEADER_KEYS), max_size=6)):
        rows.append([key, *GOOD_HEADER.get(key, "x").split("\t")])
    rows.append(["--Step-Data-Start--"])
    depth = 0
    for kind in draw(st.lists(st.sampled_from(KINDS), max_size=12)):
        if kind == "EndSequenceCall" and depth == 0:
            continue
        depth += {"SequenceCall": 1, "EndSequenceCall": -1}.get(kind, 0)
        row = [kind, draw(st.sampled_from(["A", "B"]))]
        row += ["m", draw(st.sampled_from(["1.5", "True", "0", "txt"])), "0", "2", "", "V"]
        row += [draw(st.sampled_from(["Passed", "Failed", "", "Skipped"])), "0.1", "", "", ""]
        rows.append(row)
    rows += [["EndSequenceCall", ""]] * depth
    rows += [["--Step-Data-End--"], ["UUTStatus", "Passed"], ["--UUT-End--"]]
    for _ in range(draw(st.integers(0, 3))):
        row = draw(st.sampled_from(rows))
        index = draw(st.integers(0, len(row)))
        if index == len(row):
            row.append(draw(values()))
        elif draw(st.booleans()):
            row[index] = draw(values())
        else:
            del row[index:]
    if draw(st.booleans()):
        del rows[draw(st.integers(0, len(rows) - 1))]
    text = "\n".join("\t".join(row) for row in rows)
    return text.encode(draw(st.sampled_from(["utf-8", "utf-16", "utf-8-sig"])), "replace")


@FUZZ
@given(data=wats_text_files())
def test_fuzz_structured(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(WatsTextConverter(), tmp_path_factory.getbasetemp() / "s.txt", data)


@FUZZ
@given(data=mutated(sample("wats_text/sn000123_pass.txt").read_bytes()))
def test_fuzz_mutated_sample(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(WatsTextConverter(), tmp_path_factory.getbasetemp() / "m.txt", data)


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_bytes(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(WatsTextConverter(), tmp_path_factory.getbasetemp() / "b.txt", data)
