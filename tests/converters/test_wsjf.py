"""Built-in WSJF converter: validated passthrough that keeps the id."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywats_client.converters import ConverterManager
from pywats_client.converters.builtin import WsjfConverter
from pywats_client.errors import ConversionError
from pywats_client.models import UURReport, UUTReport
from tests.converters.support import (
    FUZZ,
    check_never_raises_other,
    json_documents,
    load_json,
    mutated,
    sample,
    values,
)

WSJF_KEYS = [
    "type",
    "id",
    "pn",
    "sn",
    "rev",
    "result",
    "start",
    "startUTC",
    "processCode",
    "root",
    "steps",
    "stepType",
    "name",
    "status",
    "numericMeas",
    "booleanMeas",
    "stringMeas",
    "value",
    "compOp",
    "lowLimit",
    "highLimit",
    "uut",
    "uur",
    "execTime",
    "miscInfos",
    "description",
    "subUnits",
    "group",
    "totTime",
    "seqCall",
    "loop",
    "chart",
    "series",
]


def test_a_valid_report_passes_through_with_its_id_and_unknown_fields() -> None:
    path = sample("wsjf/psu200_final_function.json")
    converter = WsjfConverter()
    assert converter.can_convert(path) == 0.9
    (report,) = converter.convert(path)
    assert isinstance(report, UUTReport)
    assert "id" in report.model_fields_set

    (wsjf,) = ConverterManager(builtins=True, entry_points=False).convert(path).reports
    original = load_json("wsjf/psu200_final_function.json")
    assert wsjf["id"] == original["id"]
    assert wsjf["stationCalibrationDue"] == "2026-06-30"
    assert wsjf["root"]["seqCall"] == original["root"]["seqCall"]
    assert wsjf["uut"]["stepIdCausedUUTFailure"] == 4
    steps = wsjf["root"]["steps"]
    assert [s["stepType"] for s in steps] == [
        "Action",
        "ET_NLT",
        "ET_MNLT",
        "ET_NLT",
        "ET_SVT",
        "ET_PFT",
        "Action",
    ]
    assert steps[3]["causedUUTFailure"] is True
    assert steps[2]["numericMeas"] == original["root"]["steps"][2]["numericMeas"]


def test_a_list_is_several_units_and_missing_ids_are_derived(tmp_path: Path) -> None:
    source = tmp_path / "burnin.json"
    shutil.copy(sample("wsjf/two_units_no_ids.json"), source)
    conversion = ConverterManager(builtins=True, entry_points=False).convert(source)
    assert conversion.converter == "wsjf"
    assert [(r["sn"], r["result"]) for r in conversion.reports] == [
        ("LS30-000981", "P"),
        ("LS30-000982", "F"),
    ]
    assert len({r["id"] for r in conversion.reports}) == 2


def test_a_repair_report_stays_a_repair_report() -> None:
    (report,) = WsjfConverter().convert(sample("wsjf/repair_uur.json"))
    assert isinstance(report, UURReport)
    assert report.uur.ref_uut == "0b6c3a52-5f41-4d7e-9a57-2f1d8c4e9b10"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "result: Input should be 'P', 'F', 'E', 'T' or 'D' (got 'X')"),
        ('{"pn": "A", "sn": "B", "start": "2026-03-01T10:00:00Z"', "not valid JSON at line 1"),
        ("[]", "empty JSON list"),
        ('"just text"', "a WSJF report is a JSON object"),
        ('[{"pn": "A", "sn": "B"}, 3]', "report 1: a WSJF report is a JSON object"),
        ('{"pn": "A", "sn": "B", "id": "not-a-guid"}', "id: "),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"pn": "A", "sn": "B", "start": "0001-01-01T00:00:00+14:00"}', "out of range"),
    ],
)
def test_invalid_wsjf_is_refused_with_the_field_at_fault(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "r.json"
    if content is None:
        shutil.copy(sample("wsjf/bad_result_letter.json"), path)
    else:
        path.write_text(content)
    with pytest.raises(ConversionError) as caught:
        WsjfConverter().convert(path)
    assert message in str(caught.value)
    assert caught.value.converter == "wsjf"


def test_deep_step_trees_are_refused_not_recursed(tmp_path: Path) -> None:
    step: dict[str, object] = {"stepType": "Action", "name": "leaf"}
    for _ in range(200):
        step = {"stepType": "SequenceCall", "name": "s", "steps": [step]}
    path = tmp_path / "deep.json"
    path.write_text(json.dumps({"pn": "A", "sn": "B", "root": step}))
    with pytest.raises(ConversionError, match="nested more than"):
        WsjfConverter().convert(path)


def test_only_json_that_looks_like_wsjf_is_claimed_with_confidence(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"name": "package.json"}')
    assert WsjfConverter().can_convert(path) == 0.4
    path.write_text("hello")
    assert WsjfConverter().can_convert(path) == 0.0


@FUZZ
@given(data=mutated(sample("wsjf/psu200_final_function.json").read_bytes()))
def test_fuzz_mutated_sample(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(WsjfConverter(), tmp_path_factory.getbasetemp() / "m.json", data)


@FUZZ
@given(data=json_documents(WSJF_KEYS))
def test_fuzz_wsjf_shaped_json(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(WsjfConverter(), tmp_path_factory.getbasetemp() / "j.json", data)


def _steps() -> st.SearchStrategy[dict[str, object]]:
    meas = st.fixed_dictionaries(
        {},
        optional={
            "value": st.one_of(st.floats(), st.integers(), values()),
            "compOp": values(),
            "lowLimit": st.one_of(st.floats(), values()),
            "highLimit": st.one_of(st.floats(), values()),
            "status": values(),
            "name": values(),
        },
    )
    leaf = st.fixed_dictionaries(
        {"name": values()},
        optional={
            "stepType": st.sampled_from(["ET_NLT", "ET_MNLT", "ET_PFT", "ET_SVT", "Action", ""]),
            "status": values(),
            "id": st.integers(-3, 3),
            "totTime": st.one_of(st.floats(), values()),
            "numericMeas": st.lists(meas, max_size=3),
            "booleanMeas": st.lists(meas, max_size=2),
            "stringMeas": st.lists(meas, max_size=2),
        },
    )
    return st.recursive(
        leaf,
        lambda inner: st.fixed_dictionaries(
            {
                "stepType": st.just("SequenceCall"),
                "name": values(),
                "steps": st.lists(inner, max_size=4),
            }
        ),
        max_leaves=12,
    )


reports = st.fixed_dictionaries(
    {"pn": values(), "sn": values()},
    optional={
        "type": st.sampled_from(["T", "R", "X"]),
        "id": values(),
        "start": values(),
        "startUTC": values(),
        "result": values(),
        "processCode": st.one_of(st.integers(), values()),
        "uut": st.fixed_dictionaries({}, optional={"execTime": values(), "user": values()}),
        "root": _steps(),
    },
).map(lambda report: json.dumps(report).encode())


@FUZZ
@given(data=reports)
def test_fuzz_report_shaped_json(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(WsjfConverter(), tmp_path_factory.getbasetemp() / "r.json", data)


@FUZZ
@given(data=st.binary(max_size=500))
def test_fuzz_bytes(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_never_raises_other(WsjfConverter(), tmp_path_factory.getbasetemp() / "b.json", data)


def test_a_number_too_long_to_read_is_a_conversion_error(tmp_path: Path) -> None:
    # Python refuses to parse integers of more than 4300 digits (a ValueError that
    # is not a JSONDecodeError, whose text tells the user to call a Python function).
    path = tmp_path / "long.json"
    path.write_text('{"pn": "A", "sn": "B", "processCode": ' + "9" * 5000 + "}")
    with pytest.raises(ConversionError) as caught:
        WsjfConverter().convert(path)
    assert caught.value.converter == "wsjf"
    assert "too long" in str(caught.value) and "set_int_max_str_digits" not in str(caught.value)
