"""Built-in ATML (IEEE 1671 / 1636.1 test results) converter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywats_client.converters import ConverterManager
from pywats_client.converters.builtin import AtmlConverter
from pywats_client.errors import ConversionError
from tests.converters.support import (
    FUZZ,
    check_never_raises_other,
    mutated,
    sample,
    xml_grammar,
)

TR = "urn:IEEE-1636.1:2013:TestResults"
C = "urn:IEEE-1671:2010:Common"


def convert(relative: str) -> list[dict[str, Any]]:
    conversion = ConverterManager(builtins=True, entry_points=False).convert(sample(relative))
    assert conversion.converter == "atml"
    return conversion.reports


def test_a_teststand_export_uut_outcome_groups_and_results_with_limits() -> None:
    (report,) = convert("atml/teststand_pcba300.xml")
    assert report["id"] == "9a0d2c4e-6f81-4b3a-a7c2-51e0f9d8b6a4"
    assert (report["pn"], report["sn"], report["rev"], report["result"]) == (
        "PCBA-300",
        "P300-0000517",
        "F",
        "F",
    )
    assert report["machineName"] == "fct-station-05"
    assert report["uut"] == {"execTime": 42.529, "user": "Sigrid Hansen"}
    assert report["start"] == "2026-03-12T10:01:07.113000+01:00"
    root = report["root"]
    assert root["seqCall"] == {"name": "pcba300_functional.seq"}
    setup, main = root["steps"]
    assert (setup["name"], setup["status"], setup["totTime"]) == ("Setup", "P", 2.7)
    action, inrush = setup["steps"]
    assert (action["stepType"], action["status"]) == ("Action", "D")
    assert inrush["numericMeas"] == [
        {"name": "Peak", "value": 1.87, "unit": "A", "compOp": "LE", "lowLimit": 2.5, "status": "P"}
    ]
    tests = {t["name"]: t for t in main["steps"]}
    rails = tests["Rail voltages"]
    assert (rails["stepType"], rails["status"], rails["totTime"]) == ("ET_MNLT", "F", 1.5)
    assert [
        (m["name"], m["compOp"], m["lowLimit"], m["highLimit"], m["status"])
        for m in rails["numericMeas"]
    ] == [
        ("5V0", "GELE", 4.85, 5.15, "P"),
        ("3V3", "GELE", 3.2, 3.4, "F"),  # limits given high-first still map low/high right
    ]
    leakage = tests["Leakage (outside window)"]["numericMeas"][0]
    assert (leakage["compOp"], leakage["lowLimit"], leakage["highLimit"]) == ("LTGT", 0.5, 100)
    readback = tests["Serial number readback"]["stringMeas"][0]
    assert (readback["compOp"], readback["limit"], readback["status"]) == (
        "IGNORECASE",
        "p300-0000517",
        "P",
    )
    assert tests["Buzzer audible"]["booleanMeas"] == [{"status": "P"}]
    assert tests["Self test flag"]["booleanMeas"] == [{"name": "Flag", "status": "P"}]
    assert tests["Optional RF test"]["status"] == "S"


def test_a_collection_of_two_uuts_from_the_2011_schema() -> None:
    first, second = convert("atml/two_uuts_2011.xml")
    assert [(r["pn"], r["sn"], r["result"]) for r in (first, second)] == [
        ("CABLE-USB-C-1M", "CU-1M-77001", "P"),
        ("CABLE-USB-C-1M", "CU-1M-77002", "F"),
    ]
    # "not-a-guid" is no id; both get derived, different ids
    assert first["id"] != second["id"]
    assert second["root"]["steps"][0]["numericMeas"][0]["status"] == "F"  # from the LT limit
    assert first["uut"]["execTime"] == 4.0


def _doc(test: str, *, uut: str | None = None, outcome: str = "Passed") -> str:
    uut = uut or (
        "<tr:UUT><c:Definition><c:Identification><c:ModelName>M</c:ModelName>"
        "</c:Identification></c:Definition><c:SerialNumber>S1</c:SerialNumber></tr:UUT>"
    )
    return (
        f'<tr:TestResults xmlns:tr="{TR}" xmlns:c="{C}" '
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f'<tr:ResultSet name="seq">{test}<tr:Outcome value="{outcome}"/></tr:ResultSet>{uut}'
        f"</tr:TestResults>"
    )


def _numeric(value: str, limits: str = "") -> str:
    return (
        f'<tr:Test name="T"><tr:TestResult name="R"><tr:TestData>'
        f'<c:Datum xsi:type="c:double" value="{value}"/></tr:TestData>'
        f"<tr:TestLimits><tr:Limits>{limits}</tr:Limits></tr:TestLimits></tr:TestResult></tr:Test>"
    )


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (_doc("", outcome="Maybe"), "outcome 'Maybe', which is not a known ATML outcome"),
        (_doc("", outcome="NotStarted"), "the test never started"),
        (_doc("", uut="<tr:UUT/>"), "<UUT> has no <SerialNumber>"),
        (
            _doc("", uut="<tr:UUT><c:SerialNumber>S</c:SerialNumber></tr:UUT>"),
            "<UUT> has no part number",
        ),
        (_doc(_numeric("n/a")), "'n/a' is not a number"),
        (_doc(_numeric("INF")), "measured value is infinite"),
        (
            _doc(
                _numeric(
                    "1", '<c:SingleLimit comparator="ABOUT"><c:Datum value="1"/></c:SingleLimit>'
                )
            ),
            "comparator 'ABOUT' is not",
        ),
        (
            _doc(
                _numeric(
                    "1",
                    '<c:LimitPair><c:Limit comparator="GE"><c:Datum value="1"/></c:Limit>'
                    "</c:LimitPair>",
                )
            ),
            "needs exactly two <Limit>",
        ),
        (
            _doc(
                _numeric(
                    "1",
                    '<c:LimitPair><c:Limit comparator="GE"><c:Datum value="1"/>'
                    '</c:Limit><c:Limit comparator="GT"><c:Datum value="2"/></c:Limit>'
                    "</c:LimitPair>",
                )
            ),
            "one GE/GT and one LE/LT",
        ),
        (_doc('<tr:Test name="T"/>'), "neither an outcome nor test results"),
        ("<TestResultsCollection/>", "holds no <TestResults>"),
        ("<Results/>", "root element is <Results>"),
    ],
)
def test_bad_atml_is_refused_with_a_reason(tmp_path: Path, xml: str, message: str) -> None:
    path = tmp_path / "r.xml"
    path.write_text(xml)
    with pytest.raises(ConversionError) as caught:
        AtmlConverter().convert(path)
    assert message in str(caught.value)
    assert caught.value.converter == "atml"


def test_an_infinite_limit_in_a_pair_leaves_a_one_sided_limit(tmp_path: Path) -> None:
    path = tmp_path / "r.xml"
    path.write_text(
        _doc(
            _numeric(
                "7",
                '<c:LimitPair><c:Limit comparator="GE"><c:Datum value="5"/></c:Limit>'
                '<c:Limit comparator="LE"><c:Datum value="+Inf"/></c:Limit></c:LimitPair>',
            )
        )
    )
    (report,) = AtmlConverter().convert(path)
    measurement = report.to_wsjf()["root"]["steps"][0]["numericMeas"][0]
    assert (measurement["compOp"], measurement["lowLimit"], measurement["status"]) == ("GE", 5, "P")
    assert "highLimit" not in measurement


def test_missing_part_number_can_come_from_settings(tmp_path: Path) -> None:
    path = tmp_path / "r.xml"
    path.write_text(_doc("", uut="<tr:UUT><c:SerialNumber>S</c:SerialNumber></tr:UUT>"))
    converter = AtmlConverter()
    converter.configure({"pn": "CABLE-1", "process_code": 70})
    (report,) = converter.convert(path)
    assert (report.pn, report.process_code) == ("CABLE-1", 70)


STRUCTURE = {
    "TestResultsCollection": ["TestResults", "TestResults"],
    "TestResults": ["ResultSet", "UUT", "Personnel", "TestStation"],
    "Personnel": ["SystemOperator"],
    "TestStation": ["SerialNumber"],
    "UUT": ["SerialNumber", "Definition"],
    "Definition": ["Identification"],
    "Identification": ["IdentificationNumbers", "ModelName"],
    "IdentificationNumbers": ["IdentificationNumber"],
    "ResultSet": ["TestGroup", "Test", "SessionAction", "Outcome"],
    "TestGroup": ["TestGroup", "Test", "SessionAction", "Outcome"],
    "SessionAction": ["ActionOutcome"],
    "Test": ["TestResult", "TestResult", "Outcome"],
    "TestResult": ["TestData", "TestLimits", "Outcome"],
    "TestData": ["Datum"],
    "Datum": ["Value"],
    "TestLimits": ["Limits"],
    "Limits": ["LimitPair", "SingleLimit", "Expected"],
    "LimitPair": ["Limit", "Limit"],
    "Limit": ["Datum"],
    "SingleLimit": ["Datum"],
    "Expected": ["Datum"],
}
ATTRIBUTES = {
    "TestResults": ["uuid"],
    "SystemOperator": ["name", "ID"],
    "IdentificationNumber": ["number", "type"],
    "ResultSet": ["name", "startDateTime", "endDateTime"],
    "TestGroup": ["name", "callerName", "startDateTime", "endDateTime"],
    "SessionAction": ["name"],
    "Test": ["name", "startDateTime", "endDateTime"],
    "TestResult": ["name"],
    "Outcome": ["value", "qualifier"],
    "ActionOutcome": ["value"],
    "Datum": ["{http://www.w3.org/2001/XMLSchema-instance}type", "value", "unit"],
    "LimitPair": ["operator"],
    "Limit": ["comparator"],
    "SingleLimit": ["comparator"],
    "Expected": ["comparator"],
}
GOOD = {
    "uuid": ["9a0d2c4e-6f81-4b3a-a7c2-51e0f9d8b6a4"],
    "number": ["PCBA-1"],
    "type": ["Part", "Revision"],
    "startDateTime": ["2026-03-12T10:01:07+01:00", "2026-03-12T10:01:07"],
    "endDateTime": ["2026-03-12T10:01:09+01:00", "2026-03-12T10:00:00"],
    "value": ["Passed", "Failed", "Done", "1.5", "true", "UserDefined"],
    "qualifier": ["Passed", "Skipped"],
    "{http://www.w3.org/2001/XMLSchema-instance}type": ["c:double", "c:string", "c:boolean"],
    "operator": ["AND", "OR"],
    "comparator": ["GE", "LE", "LT", "GT", "EQ", "CIEQ"],
}
NAMESPACES = {
    "TestResultsCollection": "urn:IEEE-1636.1:2013:TestResultsCollection",
    "*": TR,
    **{
        tag: C
        for tag in [
            "SerialNumber",
            "Definition",
            "Identification",
            "IdentificationNumbers",
            "IdentificationNumber",
            "ModelName",
            "Datum",
            "Value",
            "LimitPair",
            "Limit",
            "SingleLimit",
            "Expected",
        ]
    },
}


@FUZZ
@given(data=xml_grammar("TestResultsCollection", STRUCTURE, ATTRIBUTES, NAMESPACES, good=GOOD))
def test_fuzz_structured(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(AtmlConverter(), tmp_path_factory.getbasetemp() / "s.xml", data)


@FUZZ
@given(data=mutated(sample("atml/teststand_pcba300.xml").read_bytes()))
def test_fuzz_mutated_sample(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(AtmlConverter(), tmp_path_factory.getbasetemp() / "m.xml", data)


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_bytes(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(AtmlConverter(), tmp_path_factory.getbasetemp() / "b.xml", data)
