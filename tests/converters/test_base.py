"""BaseConverter helpers: bounded reading, encoding detection, parse_test_file, create_step."""

from __future__ import annotations

import codecs
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywats_client.converters import BaseConverter
from pywats_client.errors import ConversionError
from pywats_client.models import (
    GenericStep,
    NumericLimitStep,
    PassFailStep,
    SequenceCallStep,
    StringValueStep,
)
from tests.converters.support import FUZZ, sample


class Plain(BaseConverter):
    name = "plain"

    def convert(self, file_path: Path) -> Any:
        return []


@pytest.fixture
def plain() -> Plain:
    return Plain()


# --- reading text ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Temp 23 °C; Prüfung".encode(), "Temp 23 °C; Prüfung"),
        (codecs.BOM_UTF8 + "µA".encode(), "µA"),
        (codecs.BOM_UTF16_LE + "Ω ok".encode("utf-16-le"), "Ω ok"),
        (codecs.BOM_UTF16_BE + "Ω ok".encode("utf-16-be"), "Ω ok"),
        ("Temp 23 °C; Prüfung \u2013 ok".encode("cp1252"), "Temp 23 °C; Prüfung \u2013 ok"),
        (b"byte \x81 undefined in cp1252", "byte \x81 undefined in cp1252"),
    ],
)
def test_read_text_detects_the_encoding(
    plain: Plain, tmp_path: Path, data: bytes, expected: str
) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(data)
    assert plain.read_text(path) == expected


def test_read_text_uses_the_configured_encoding_and_says_when_it_does_not_fit(
    plain: Plain, tmp_path: Path
) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes("Ω".encode("utf-16-le"))
    plain.text_encoding = "utf-16-le"
    assert plain.read_text(path) == "Ω"
    path.write_bytes(b"\xff\xfe\xfd")
    plain.text_encoding = "utf-8"
    with pytest.raises(ConversionError, match="not valid utf-8 text") as caught:
        plain.read_text(path)
    assert caught.value.converter == "plain" and caught.value.file == path
    plain.text_encoding = "klingon"
    with pytest.raises(ConversionError, match="'klingon' is not a known encoding"):
        plain.read_text(path)


def test_reading_is_bounded_by_max_size_setting_and_max_file_size(
    plain: Plain, tmp_path: Path
) -> None:
    path = tmp_path / "big.txt"
    path.write_bytes(b"a" * 2000)
    plain.max_file_size = 1999
    with pytest.raises(ConversionError, match="2000 bytes, larger than the limit of 1999"):
        plain.read_bytes(path)
    plain.max_file_size = 10_000
    plain.configure({"max_size": 1500})
    assert plain.size_limit == 1500
    with pytest.raises(ConversionError, match="refused before parsing"):
        plain.read_text(path)
    plain.configure({"max_size": 50_000})
    assert plain.size_limit == 10_000  # never above max_file_size
    assert len(plain.read_bytes(path)) == 2000


def test_peek_reads_only_the_head_and_never_raises(plain: Plain, tmp_path: Path) -> None:
    path = tmp_path / "p.bin"
    path.write_bytes(b"x" * 100)
    assert plain.peek(path, 10) == b"x" * 10
    assert plain.peek(tmp_path / "missing") == b""


@pytest.mark.parametrize(
    ("bom", "encoding"),
    [
        (b"", "utf-8"),
        (codecs.BOM_UTF8, "utf-8"),  # Notepad's "UTF-8 with BOM", common on Windows
        (codecs.BOM_UTF16_LE, "utf-16-le"),  # Notepad's "Unicode"
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
    ],
)
def test_peek_text_decodes_like_read_text_and_strips_the_bom(
    plain: Plain, tmp_path: Path, bom: bytes, encoding: str
) -> None:
    path = tmp_path / "board.res"
    text = "# BENCHTEST v3\nUNIT;Prüfling\n"
    path.write_bytes(bom + text.encode(encoding))
    assert plain.peek_text(path) == text == plain.read_text(path)
    assert plain.peek(path).startswith(b"# BENCHTEST") is (bom == b"" and encoding == "utf-8")


@pytest.mark.parametrize(
    ("text", "encoding", "size"),
    [
        ("Prüfung °C µA", "utf-8", 3),  # the cut falls inside the two bytes of "ü"
        ("Prüfung °C µA", "utf-8", 4),
        ("Ωmega", "utf-16-le", 3),  # half a UTF-16 code unit
        ("Prüfung °C", "cp1252", 4),
    ],
)
def test_peek_text_of_a_cut_head_keeps_the_right_encoding(
    plain: Plain, tmp_path: Path, text: str, encoding: str, size: int
) -> None:
    path = tmp_path / "t.txt"
    bom = codecs.BOM_UTF16_LE if encoding == "utf-16-le" else b""
    path.write_bytes(bom + text.encode(encoding))
    head = plain.peek_text(path, size + len(bom))
    assert text.startswith(head) and len(head) >= 1


def test_peek_text_uses_the_configured_encoding_and_never_raises(
    plain: Plain, tmp_path: Path
) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes("Ωmega".encode("utf-16-le"))
    plain.text_encoding = "utf-16-le"
    assert plain.peek_text(path) == "Ωmega"
    plain.text_encoding = "utf-8"
    path.write_bytes(b"ok \xff\xfe")
    assert plain.peek_text(path) == "ok \ufffd\ufffd"  # a peek never raises; read_text does
    plain.text_encoding = "klingon"
    path.write_bytes(codecs.BOM_UTF8 + b"# head")
    assert plain.peek_text(path) == "# head"  # unknown codec: detected, read_text reports it
    assert plain.peek_text(tmp_path / "missing") == ""


# --- parse_test_file ------------------------------------------------------------------


def test_parse_test_file_reads_the_documented_key_value_format(plain: Plain) -> None:
    data = plain.parse_test_file(sample("seed/board_0042.test"))
    assert data["part_number"] == "PCBA-400"
    assert data["serial_number"] == "B400-0042"
    assert data["revision"] == "A"
    assert data["passed"] is True
    assert data["start_time"] == datetime(
        2026, 3, 14, 8, 12, 30, tzinfo=timezone(timedelta(hours=1))
    )
    assert data["operator"] == "nils"
    assert [s["name"] for s in data["steps"]] == [
        "Supply current",
        "Rails",
        "Display test",
        "Firmware",
    ]
    assert data["steps"][0] == {
        "name": "Supply current",
        "value": 0.134,
        "unit": "A",
        "low": 0.1,
        "high": 0.2,
    }
    assert [s["name"] for s in data["steps"][1]["steps"]] == ["5V", "3V3"]
    assert data["steps"][3] == {"name": "Firmware", "value": "7.1.4", "limit": "7.1.4"}


def test_parse_test_file_reads_json_and_derives_passed_and_start(
    plain: Plain, tmp_path: Path
) -> None:
    path = tmp_path / "unit.test"
    path.write_text(
        json.dumps(
            {
                "PN": "PCBA-9",
                "Serial Number": "S-1",
                "steps": [
                    {"name": "Vout", "value": 5.4, "low": 4.9, "high": 5.1, "unit": "V"},
                    {"name": "Group", "steps": [{"name": "LED", "passed": True}]},
                ],
            }
        )
    )
    data = plain.parse_test_file(path)
    assert (data["part_number"], data["serial_number"], data["revision"]) == ("PCBA-9", "S-1", "")
    assert data["passed"] is False  # Vout is above its high limit
    assert data["start_time"] == datetime.fromtimestamp(path.stat().st_mtime).astimezone()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("serial_number = S\n", "'part_number' is missing"),
        ("part_number = P\nserial_number = S\nstep = V | value=1 | low=x\n", "line 3: "),
        ("part_number = P\nserial_number = S\nstep = V | bogus=1\n", "unknown step key 'bogus'"),
        ("part_number = P\nserial_number = S\nsequence = G\nstep = V | value=1\n", "no 'end'"),
        ("part_number = P\nserial_number = S\nend\n", "line 3: 'end' without"),
        ("part_number = P\npart_number = Q\nserial_number = S\n", "already given on line 1"),
        ("part_number = P\nserial_number = S\npassed = maybe\n", "line 3: 'maybe' is not"),
        ("part_number = P\nserial_number = S\nstart_time = yesterday\n", "is not a date-time"),
        ("part_number P\n", "line 1: expected 'key = value'"),
        ("{broken json", "not valid JSON"),
        ("[1, 2]", "line 1: expected"),
    ],
)
def test_parse_test_file_errors_name_the_line(
    plain: Plain, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.test"
    path.write_text(text)
    with pytest.raises(ConversionError) as caught:
        plain.parse_test_file(path)
    assert message in str(caught.value)
    assert caught.value.converter == "plain" and caught.value.file == path


@FUZZ
@given(text=st.text(max_size=300))
def test_parse_test_file_raises_only_conversion_errors(
    text: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz.test"
    path.write_text(text, encoding="utf-8")
    try:
        data = Plain().parse_test_file(path)
    except ConversionError:
        return
    for step in data["steps"]:
        Plain().create_step(step)


# --- create_step -------------------------------------------------------------------


def test_create_step_builds_the_right_typed_step(plain: Plain) -> None:
    numeric = plain.create_step(
        {"name": "Vout", "value": 5.02, "unit": "V", "low": 4.9, "high": 5.1}
    )
    assert isinstance(numeric, NumericLimitStep) and numeric.step_type == "ET_NLT"
    (meas,) = numeric.numeric_meas
    assert (meas.comp_op, meas.low_limit, meas.high_limit, meas.status) == ("GELE", 4.9, 5.1, "P")
    assert numeric.status == "P"

    high_only = plain.create_step({"name": "Ripple", "value": 25, "high": 20})
    assert isinstance(high_only, NumericLimitStep)
    assert (high_only.numeric_meas[0].comp_op, high_only.numeric_meas[0].low_limit) == ("LE", 20)
    assert high_only.status == "F"

    multi = plain.create_step(
        {"name": "Rails", "measurements": [{"name": "3V3", "value": 3.3}, {"value": 1.8}]}
    )
    assert isinstance(multi, NumericLimitStep) and multi.step_type == "ET_MNLT"
    assert [m.name for m in multi.numeric_meas] == ["3V3", "1"]

    text = plain.create_step({"name": "FW", "value": "1.2.3", "limit": "1.2.4"})
    assert isinstance(text, StringValueStep) and text.status == "F"
    assert text.string_meas[0].comp_op == "CASESENSIT"

    check = plain.create_step({"name": "LED", "passed": False, "time": 0.2, "text": "dark"})
    assert isinstance(check, PassFailStep) and check.status == "F"
    assert (check.tot_time, check.report_text) == (0.2, "dark")

    seq = plain.create_step({"name": "Power", "steps": [{"name": "V", "value": 1}, check]})
    assert isinstance(seq, SequenceCallStep) and seq.status == "F"
    assert seq.steps[1] is check

    action = plain.create_step({"name": "Power on", "group": "setup"})
    assert isinstance(action, GenericStep)
    assert (action.step_type, action.status, action.group) == ("Action", "D", "S")

    explicit = plain.create_step({"name": "Odd", "type": "passfail", "status": "Skipped"})
    assert isinstance(explicit, PassFailStep) and explicit.status == "S"

    wsjf = plain.create_step(
        {"stepType": "ET_PFT", "name": "Raw", "status": "P", "booleanMeas": [{"status": "P"}]}
    )
    assert isinstance(wsjf, PassFailStep)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"value": 1}, "every step needs a 'name'"),
        ({"name": "V", "value": 1, "low": "low"}, "step 'V': 'low' is not a number"),
        ({"name": "V", "value": 1, "comp": "BETWEEN"}, "step 'V'"),
        ({"name": "V", "type": "matrix"}, "unknown step type 'matrix'"),
        ({"name": "V", "passed": "yes"}, "'passed' must be true or false"),
        ({"name": "V", "type": "passfail"}, "needs 'passed'"),
        ({"name": "V", "status": "green"}, "'green' is not a status"),
        ({"name": "V", "steps": "all"}, "'steps' must be a list"),
        ({"name": "V", "vlaue": 1}, "unknown step key 'vlaue'"),
        ({"name": "V", "value": float("nan")}, "step 'V'"),
    ],
)
def test_create_step_refuses_dicts_that_make_no_sense(
    plain: Plain, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        plain.create_step(spec)
    assert message in str(caught.value)


def test_create_step_refuses_absurd_nesting(plain: Plain) -> None:
    spec: dict[str, Any] = {"name": "leaf", "value": 1}
    for level in range(100):
        spec = {"name": f"level {level}", "steps": [spec]}
    with pytest.raises(ValueError, match="nested more than"):
        plain.create_step(spec)


def test_parse_test_file_says_plainly_when_a_number_is_too_long(
    plain: Plain, tmp_path: Path
) -> None:
    path = tmp_path / "long.test"
    path.write_text('{"serial_number": "S1", "part_number": "P1", "count": ' + "9" * 5000 + "}")
    with pytest.raises(ConversionError) as caught:
        plain.parse_test_file(path)
    assert "too long" in str(caught.value) and "set_int_max_str_digits" not in str(caught.value)
