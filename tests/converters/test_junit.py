"""Built-in JUnit XML converter (pytest --junitxml and other test executives)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywats_client.converters import ConverterManager
from pywats_client.converters.builtin import JUnitConverter
from pywats_client.core.config import ClientConfig
from pywats_client.errors import ConversionError
from tests.converters.support import (
    FUZZ,
    check_never_raises_other,
    mutated,
    sample,
    xml_grammar,
)


def convert(path: Path, **settings: Any) -> dict[str, Any]:
    config = ClientConfig(converters={"junit": settings} if settings else {})
    manager = ConverterManager(config, plugin_dirs=[], entry_points=False)
    assert manager.load() == []
    conversion = manager.convert(path)
    assert conversion.converter == "junit"
    (report,) = conversion.reports
    return report


def test_pytest_output_each_testcase_a_step_failures_with_their_message() -> None:
    report = convert(sample("junit/pytest_fw_regression.xml"))
    assert (report["pn"], report["sn"], report["rev"], report["result"]) == (
        "CTRL-BOARD-9",
        "CB9-2610-0042",
        "E",
        "F",
    )
    assert report["uut"] == {"user": "ci-bot", "execTime": 14.032}
    assert report["start"] == "2026-03-10T15:12:03.418214+01:00"
    assert report["miscInfos"] == [{"description": "firmware", "text": "9.3.0-rc2"}]
    (suite,) = report["root"]["steps"]
    assert (suite["name"], suite["status"], suite["totTime"]) == ("pytest", "F", 14.032)
    classes = {c["name"]: c for c in suite["steps"]}
    assert list(classes) == [
        "tests.test_boot.TestBoot",
        "tests.test_can.TestCan",
        "tests.test_adc.TestAdc",
        "tests.test_power",
    ]
    assert classes["tests.test_boot.TestBoot"]["status"] == "P"
    lost = classes["tests.test_can.TestCan"]["steps"][1]
    assert (lost["name"], lost["stepType"], lost["status"]) == (
        "test_can_loopback[1M]",
        "ET_PFT",
        "F",
    )
    assert lost["errorMessage"] == "AssertionError: 12 frames lost (max 0)"
    assert lost["reportText"].startswith("failure: AssertionError: 12 frames lost (max 0)\n")
    assert "tests/test_can.py:41: AssertionError" in lost["reportText"]
    setup_error, skipped = classes["tests.test_adc.TestAdc"]["steps"]
    assert setup_error["status"] == "F"
    assert setup_error["reportText"].startswith("error: failed on setup")
    assert skipped["status"] == "S" and skipped["booleanMeas"] == [{"status": "S"}]
    assert skipped["reportText"].startswith("skipped (pytest.skip): calibrator offline")


def test_identity_from_filename_pattern_or_settings(tmp_path: Path) -> None:
    source = tmp_path / "TEST-SN48213-motor-eol.xml"
    shutil.copy(sample("junit/TEST-SN48213-motor-eol.xml"), source)
    plain = convert(source)
    assert (plain["pn"], plain["sn"]) == ("MotorEOL", "TEST-SN48213-motor-eol")
    mapped = convert(
        source, filename_pattern=r"(?P<sn>SN\d+)", pn="MOTOR-3PH-750W", rev="B", process_code=60
    )
    assert (mapped["pn"], mapped["sn"], mapped["rev"], mapped["processCode"]) == (
        "MOTOR-3PH-750W",
        "SN48213",
        "B",
        60,
    )
    assert mapped["result"] == "P"
    assert mapped["start"].startswith("2026-03-11T09:30:00")
    assert [s["name"] for s in mapped["root"]["steps"][0]["steps"]] == ["Safety", "Performance"]


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<testsuite><testcase time='1'/></testsuite>", "a <testcase> has no name"),
        ("<testsuite><testcase name='a' time='fast'/></testsuite>", "time: 'fast' is not a number"),
        ("<testsuite><testcase name='a' time='-1'/></testsuite>", "time is negative"),
        ("<testsuite timestamp='noon'/>", "timestamp: 'noon' is not a date-time"),
        ("<results/>", "root element is <results>"),
        ("<testsuite><testcase name='a'>", "not well-formed XML"),
    ],
)
def test_bad_junit_is_refused_with_a_reason(tmp_path: Path, xml: str, message: str) -> None:
    path = tmp_path / "r.xml"
    path.write_text(xml)
    with pytest.raises(ConversionError) as caught:
        JUnitConverter().convert(path)
    assert message in str(caught.value)
    assert caught.value.converter == "junit"


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="needs a named group"):
        JUnitConverter().configure({"filename_pattern": "SN\\d+"})
    with pytest.raises(ValueError, match="not a regex"):
        JUnitConverter().configure({"filename_pattern": "(?P<sn>"})
    with pytest.raises(ValueError, match=r"converters\.junit\.sn: must be str"):
        JUnitConverter().configure({"sn": 7})


def test_junit_and_other_xml_are_told_apart(tmp_path: Path) -> None:
    manager = ConverterManager(plugin_dirs=[], entry_points=False)
    for relative, expected in [
        ("junit/pytest_fw_regression.xml", "junit"),
        ("wsxf/pcba100_ict.xml", "wsxf"),
        ("atml/teststand_pcba300.xml", "atml"),
    ]:
        chosen = manager.select(sample(relative))
        assert chosen is not None and chosen.name == expected, relative


STRUCTURE = {
    "testsuites": ["testsuite", "testsuite", "properties"],
    "testsuite": ["testcase", "testcase", "testsuite", "properties", "system-out"],
    "properties": ["property"],
    "testcase": ["failure", "error", "skipped", "system-out"],
}
ATTRIBUTES = {
    "testsuites": ["name", "time", "timestamp"],
    "testsuite": ["name", "time", "timestamp", "tests", "failures"],
    "property": ["name", "value"],
    "testcase": ["name", "classname", "time"],
    "failure": ["message", "type"],
    "error": ["message", "type"],
    "skipped": ["message"],
}
GOOD = {
    "name": ["serial_number", "part_number", "revision", "operator", "process_code", "t1"],
    "time": ["0.5", "12", "1,234.5"],
    "timestamp": ["2026-03-10T15:12:03", "2026-03-10T15:12:03.4+01:00"],
    "value": ["SN-1", "10", "x"],
    "classname": ["a.b.C", "x"],
    "message": ["boom", "  "],
}


@FUZZ
@given(data=xml_grammar("testsuites", STRUCTURE, ATTRIBUTES, good=GOOD))
def test_fuzz_structured(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(JUnitConverter(), tmp_path_factory.getbasetemp() / "s.xml", data)


@FUZZ
@given(data=mutated(sample("junit/pytest_fw_regression.xml").read_bytes()))
def test_fuzz_mutated_sample(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(JUnitConverter(), tmp_path_factory.getbasetemp() / "m.xml", data)


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_bytes(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(JUnitConverter(), tmp_path_factory.getbasetemp() / "b.xml", data)
