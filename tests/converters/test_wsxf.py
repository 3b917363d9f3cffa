"""Built-in WSXF (WATS standard XML) converter."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywats_client.converters import ConverterManager
from pywats_client.converters.builtin import WsxfConverter
from pywats_client.converters.builtin.wsxf import WSXF_NAMESPACE
from pywats_client.errors import ConversionError
from tests.converters.support import (
    FUZZ,
    check_never_raises_other,
    mutated,
    sample,
    xml_documents,
    xml_grammar,
)


def convert(relative: str) -> list[dict[str, object]]:
    manager = ConverterManager(builtins=True, entry_points=False)
    conversion = manager.convert(sample(relative))
    assert conversion.converter == "wsxf"
    return conversion.reports


def test_a_full_ict_report_maps_header_and_every_step_kind() -> None:
    (report,) = convert("wsxf/pcba100_ict.xml")
    assert report["id"] == "3e8f6a10-2b7d-4c91-8e55-0a9d1f2b3c4d"
    assert (report["pn"], report["sn"], report["rev"], report["result"]) == (
        "PCBA-100",
        "PCBA100-0007731",
        "C",
        "F",
    )
    assert (report["processCode"], report["processName"]) == (30, "ICT")
    assert (report["machineName"], report["location"], report["purpose"]) == (
        "ict-line3",
        "Trondheim",
        "Production",
    )
    assert report["start"] == "2026-03-01T13:05:12.417000+01:00"
    assert report["uut"] == {
        "execTime": 41.75,
        "user": "marit",
        "batchSN": "LOT-2026-09",
        "fixtureId": "FIX-ICT-7",
        "testSocketIndex": 0,
        "comment": "Retest after fixture clean",
        "errorCode": 0,
    }
    assert report["miscInfos"] == [
        {"description": "Program", "text": "pcba100_ict.obc"},
        {"description": "Board temperature", "text": "31.5 °C", "numeric": 31.5},
    ]
    assert report["subUnits"] == [
        {"partType": "Radio module", "pn": "RM-4", "rev": "A", "sn": "RM4-100293", "position": 1}
    ]
    root = report["root"]
    assert isinstance(root, dict)
    assert root["name"] == "MainSequence" and root["status"] == "F"
    assert root["seqCall"] == {
        "path": "D:\\programs\\pcba100_ict.seq",
        "name": "pcba100_ict.seq",
        "version": "3.2.0",
    }
    steps = {s["name"]: s for s in root["steps"]}
    assert steps["Fixture closed"]["group"] == "S"
    assert steps["Fixture open"]["group"] == "C"
    r47 = steps["Resistors"]["steps"][1]
    assert r47["status"] == "F" and r47["causedUUTFailure"] is True
    assert r47["reportText"] == "Suspect wrong value placed (expected 470R)"
    assert r47["numericMeas"] == [
        {
            "value": 512.4,
            "unit": "Ohm",
            "compOp": "GELE",
            "lowLimit": 465.3,
            "highLimit": 474.7,
            "status": "F",
        }
    ]
    assert [m["name"] for m in steps["Rails"]["numericMeas"]] == ["3V3", "1V8"]
    assert steps["Boundary scan IDCODE"]["stringMeas"][0]["limit"] == "0x4BA00477"
    chart = steps["Oscillator sweep"]["chart"]
    assert chart["xUnit"] == "MHz" and chart["series"][0]["ydata"] == "-61;-40;-3.2;-41;-60"
    assert steps["Flash retries"]["loop"] == {"num": 3, "endingIndex": 2, "passed": 3, "failed": 0}


def test_several_reports_including_a_repair() -> None:
    uut, uur = convert("wsxf/uur_and_uut.xml")
    assert (uut["type"], uut["result"]) == ("T", "P")
    r47 = uut["root"]["steps"][1]  # type: ignore[index]
    assert r47["status"] == "P" and r47["numericMeas"][0]["status"] == "P"  # derived from limits
    assert uur["type"] == "R"
    assert uur["uur"] == {
        "user": "tech3",
        "comment": "R47 was 510R; replaced with 470R",
        "processCode": 30,
        "processName": "ICT",
        "refUUT": "3e8f6a10-2b7d-4c91-8e55-0a9d1f2b3c4d",
    }
    assert uut["id"] != uur["id"]


def _report(body: str, **attributes: str) -> str:
    attrs = {"SN": "S1", "PN": "P1", "Start": "2026-03-01T13:05:12+01:00", **attributes}
    text = " ".join(f'{k}="{v}"' for k, v in attrs.items())
    return f'<Reports xmlns="{WSXF_NAMESPACE}"><Report type="UUT" {text}>{body}</Report></Reports>'


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (_report("", Result="Maybe"), "Result='Maybe' is not Passed"),
        (
            _report('<Step Name="V" StepType="ET_NLT"><NumericLimit NumericValue="n/a"/></Step>'),
            "NumericValue: 'n/a' is not a number",
        ),
        (_report('<Step Name="V" StepType="ET_NLT"/>'), "(ET_NLT) has no <NumericLimit>"),
        (
            _report(
                '<Step Name="V" StepType="ET_NLT" Status="Green"><NumericLimit NumericValue="1"/>'
                "</Step>"
            ),
            "Status='Green' is not",
        ),
        (_report("<Step StepType='Action'/>"), "a <Step> has no Name"),
        (_report("", SN=""), "has no SN attribute"),
        (
            _report(
                '<Step Name="V" StepType="ET_NLT"><NumericLimit NumericValue="1" '
                'CompOperator="GELE" LowLimit="0"/></Step>'
            ),
            "needs lowLimit and highLimit",
        ),
        ("<Reports/>", "holds no <Report>"),
        ("<html><body/></html>", "root element is <html>"),
        (_report("", Start="yesterday"), "is not a date-time"),
    ],
)
def test_bad_wsxf_is_refused_with_a_reason(tmp_path: Path, xml: str, message: str) -> None:
    path = tmp_path / "r.xml"
    path.write_text(xml)
    with pytest.raises(ConversionError) as caught:
        WsxfConverter().convert(path)
    assert message in str(caught.value)
    assert caught.value.converter == "wsxf"


def test_wsxf_is_recognised_by_namespace() -> None:
    converter = WsxfConverter()
    assert converter.can_convert(sample("wsxf/pcba100_ict.xml")) == 0.95
    assert converter.can_convert(sample("junit/pytest_fw_regression.xml")) == 0.0


TAGS = [
    "Reports",
    "Report",
    "UUT",
    "UUR",
    "Process",
    "MiscInfo",
    "ReportUnitHierarchy",
    "Step",
    "NumericLimit",
    "PassFail",
    "StringValue",
    "SequenceCall",
    "Loop",
    "Chart",
    "Series",
    "xdata",
    "ydata",
    "Comment",
    "ReportText",
]
ATTRS = [
    "type",
    "ID",
    "SN",
    "PN",
    "Rev",
    "Result",
    "Start",
    "Start_utc",
    "Name",
    "StepType",
    "Status",
    "Group",
    "Id",
    "total_time",
    "NumericValue",
    "LowLimit",
    "HighLimit",
    "CompOperator",
    "Units",
    "Value",
    "StringLimit",
    "Code",
    "Description",
    "Numeric",
    "Position",
    "Num",
    "ExecutionTime",
    "TestSocketIndex",
    "CausedUUTFailure",
    "ErrorCode",
    "RefUUT",
    "ConfirmDate",
]


STRUCTURE = {
    "Reports": ["Report", "Report"],
    "Report": ["UUT", "UUR", "Process", "MiscInfo", "ReportUnitHierarchy", "Step", "Step"],
    "UUT": ["Comment"],
    "UUR": ["Comment"],
    "Step": [
        "Step",
        "NumericLimit",
        "PassFail",
        "StringValue",
        "SequenceCall",
        "Loop",
        "Chart",
        "ReportText",
    ],
    "Chart": ["Series"],
    "Series": ["xdata", "ydata"],
}
ATTRIBUTES = {
    "Report": ["type", "ID", "SN", "PN", "Rev", "Result", "Start", "Start_utc", "MachineName"],
    "UUT": ["UserLoginName", "ExecutionTime", "TestSocketIndex", "ErrorCode", "BatchFailCount"],
    "UUR": ["UserLoginName", "RefUUT", "ExecutionTime", "ProcessCode", "ConfirmDate"],
    "Process": ["Code", "Name"],
    "MiscInfo": ["Description", "Numeric"],
    "ReportUnitHierarchy": ["PartType", "PN", "SN", "Position"],
    "Step": [
        "Id",
        "Group",
        "Name",
        "StepType",
        "Status",
        "total_time",
        "ErrorCode",
        "CausedUUTFailure",
    ],
    "NumericLimit": [
        "Name",
        "NumericValue",
        "LowLimit",
        "HighLimit",
        "Units",
        "CompOperator",
        "Status",
    ],
    "PassFail": ["Name", "Status"],
    "StringValue": ["Name", "Value", "StringLimit", "CompOperator", "Status"],
    "SequenceCall": ["Path", "Name", "Version"],
    "Loop": ["Num", "EndingIndex", "Passed", "Failed"],
    "Chart": ["ChartType", "Label", "XUnit"],
    "Series": ["Name", "DataType"],
}


STATUSES = ["Passed", "Failed", "Done", "Skipped", "Error", "Terminated"]
NUMBERS = ["0", "1", "5.02", "-3", "12"]
GOOD = {
    "type": ["UUT", "UUR"],
    "SN": ["SN-1"],
    "PN": ["PCBA-1"],
    "Result": STATUSES,
    "Status": STATUSES,
    "Start": ["2026-03-01T13:05:12+01:00"],
    "Start_utc": ["2026-03-01T12:05:12Z"],
    "ConfirmDate": ["2026-03-01T12:05:12Z"],
    "StepType": ["SequenceCall", "ET_NLT", "ET_MNLT", "ET_PFT", "ET_SVT", "WATS_XYGMNLT", "Action"],
    "Group": ["Main", "Setup", "Cleanup"],
    "CompOperator": ["GELE", "LT", "LOG", "EQ", "CASESENSIT"],
    "CausedUUTFailure": ["true", "false"],
    "ID": ["3e8f6a10-2b7d-4c91-8e55-0a9d1f2b3c4d"],
    **{
        name: NUMBERS
        for name in [
            "Id",
            "total_time",
            "NumericValue",
            "LowLimit",
            "HighLimit",
            "Code",
            "Numeric",
            "Position",
            "Num",
            "EndingIndex",
            "Passed",
            "Failed",
            "ExecutionTime",
            "TestSocketIndex",
            "ErrorCode",
            "BatchFailCount",
            "ProcessCode",
        ]
    },
}


@FUZZ
@given(data=xml_grammar("Reports", STRUCTURE, ATTRIBUTES, {"*": WSXF_NAMESPACE}, good=GOOD))
def test_fuzz_wsxf_structured(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(WsxfConverter(), tmp_path_factory.getbasetemp() / "s.xml", data)


@FUZZ
@given(data=xml_documents(TAGS, ATTRS, WSXF_NAMESPACE))
def test_fuzz_wsxf_shaped_xml(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(WsxfConverter(), tmp_path_factory.getbasetemp() / "x.xml", data)


@FUZZ
@given(data=mutated(sample("wsxf/pcba100_ict.xml").read_bytes()))
def test_fuzz_mutated_sample(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(WsxfConverter(), tmp_path_factory.getbasetemp() / "m.xml", data)


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_bytes(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(WsxfConverter(), tmp_path_factory.getbasetemp() / "b.xml", data)
