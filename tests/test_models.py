"""Report models: WSJF in and out, the seed's constructor style, and a round-trip property."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pywats_client.models import (
    GenericStep,
    MiscInfo,
    NumericLimitStep,
    NumericMeasurement,
    PassFailStep,
    SequenceCallStep,
    StringValueStep,
    SubUnit,
    UURReport,
    UUTReport,
    compare_numeric,
    parse_report,
)
from pywats_client.models.report import dump_checked

WATS_MD_EXAMPLE: dict[str, Any] = {
    "type": "T",
    "id": "0b6c3a52-5f41-4d7e-9a57-2f1d8c4e9b10",
    "pn": "PSU-200",
    "sn": "SN000123",
    "rev": "B",
    "processCode": 10,
    "processName": "Final Function",
    "result": "P",
    "machineName": "line2-st4",
    "location": "Bergen",
    "purpose": "Production",
    "start": "2026-03-02T09:15:00+01:00",
    "startUTC": "2026-03-02T08:15:00Z",
    "uut": {"user": "op7", "execTime": 12.4},
    "root": {
        "id": 0,
        "group": "M",
        "stepType": "SequenceCall",
        "name": "MainSequence",
        "status": "P",
        "steps": [
            {
                "id": 1,
                "group": "M",
                "stepType": "ET_NLT",
                "name": "Vout",
                "status": "P",
                "numericMeas": [
                    {
                        "value": 5.02,
                        "unit": "V",
                        "compOp": "GELE",
                        "lowLimit": 4.9,
                        "highLimit": 5.1,
                        "status": "P",
                    }
                ],
            }
        ],
    },
}


def test_reference_example_round_trips() -> None:
    report = parse_report(WATS_MD_EXAMPLE)
    assert isinstance(report, UUTReport)
    out = report.to_wsjf()
    for key, value in WATS_MD_EXAMPLE.items():
        assert out[key] == value, key


def test_seed_constructor_style() -> None:
    report = UUTReport(
        pn="PCBA-100",
        sn="SN-1",
        rev="A",
        pass_fail=False,
        start_date_time="2026-03-01T09:15:00+01:00",
    )
    report.steps.append(
        NumericLimitStep(
            name="VCC",
            numeric_meas=[
                NumericMeasurement(value=5.3, comp_op="GELE", low_limit=4.9, high_limit=5.1)
            ],
        )
    )
    data = report.to_wsjf()
    assert data["result"] == "F"
    assert report.pass_fail is False
    assert data["startUTC"] == "2026-03-01T08:15:00Z"
    step = data["root"]["steps"][0]
    assert step["status"] == "F"  # derived from the limits
    assert step["numericMeas"][0]["status"] == "F"
    assert uuid.UUID(data["id"]).version == 4


def test_datetime_start_and_naive_means_local() -> None:
    aware = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5)))
    report = UUTReport(pn="p", sn="s", start_date_time=aware)
    assert report.to_wsjf()["startUTC"] == "2026-01-02T08:04:05Z"
    naive = UUTReport(pn="p", sn="s", start_date_time=datetime(2026, 1, 2, 3, 4, 5))
    assert naive.start.tzinfo is not None


def _vcc(value: float) -> NumericLimitStep:
    measurement = NumericMeasurement(value=value, comp_op="GELE", low_limit=4.9, high_limit=5.1)
    return NumericLimitStep(name="VCC", numeric_meas=[measurement])


def test_result_and_sequence_status_follow_the_steps_unless_set() -> None:
    """A converter that sets no result must not upload a failed board as passed."""
    report = UUTReport(pn="p", sn="s")
    report.steps.append(_vcc(5.0))
    assert (report.to_wsjf()["result"], report.to_wsjf()["root"]["status"]) == ("P", "P")
    inner = SequenceCallStep(name="Power")
    inner.steps.append(_vcc(7.0))
    report.steps.append(inner)
    data = report.to_wsjf()
    assert (data["result"], data["root"]["status"]) == ("F", "F")
    assert data["root"]["steps"][1]["status"] == "F"
    report.steps.append(GenericStep(step_type="Action", name="abort", status="E"))
    assert report.to_wsjf()["result"] == "F"  # a failure outranks an error
    errored = UUTReport(pn="p", sn="s")
    errored.steps.append(GenericStep(step_type="Action", name="abort", status="E"))
    assert errored.pass_fail is False  # settled when read, not only when serialized
    assert errored.result == "E"


def test_a_result_or_status_set_by_the_converter_is_kept() -> None:
    report = UUTReport(pn="p", sn="s", pass_fail=True)
    report.steps.append(SequenceCallStep(name="Power", status="P", steps=[_vcc(7.0)]))
    data = report.to_wsjf()
    assert data["result"] == "P"
    assert data["root"]["status"] == "P"  # its child's explicit status P
    report.result = "T"
    assert report.to_wsjf()["result"] == "T"
    parsed = parse_report({**WATS_MD_EXAMPLE, "result": "P"})
    parsed.steps.append(_vcc(7.0))
    assert parsed.to_wsjf()["result"] == "P"  # read from a file: the file's word stands
    assert parsed.to_wsjf()["root"]["status"] == "P"


def test_steps_appended_as_dicts_are_validated_and_numbered() -> None:
    report = UUTReport(pn="p", sn="s")
    report.steps.append({"name": "LED", "booleanMeas": [{"status": "F"}]})
    report.steps.append(
        SequenceCallStep(name="Power", steps=[GenericStep(step_type="Action", name="settle")])
    )
    report.steps.append(
        {"name": "FW", "stringMeas": [{"value": "1.2", "compOp": "CASESENSIT", "limit": "1.2"}]}
    )
    data = report.to_wsjf()
    steps = data["root"]["steps"]
    assert [s["stepType"] for s in steps] == ["ET_PFT", "SequenceCall", "ET_SVT"]
    assert steps[0]["status"] == "F"
    assert steps[2]["status"] == "P"
    ids = [data["root"]["id"], *(s["id"] for s in steps), steps[1]["steps"][0]["id"]]
    assert sorted(ids) == list(range(5))
    assert isinstance(report.steps[0], PassFailStep)
    assert isinstance(report.steps[2], StringValueStep)


def test_duplicate_step_ids_renumbered() -> None:
    report = UUTReport(pn="p", sn="s")
    report.steps.append(GenericStep(id=7, step_type="Action", name="a"))
    report.steps.append(GenericStep(id=7, step_type="Action", name="b"))
    ids = [s["id"] for s in report.to_wsjf()["root"]["steps"]]
    assert ids[0] == 7
    assert len(set(ids)) == 2


def test_unknown_fields_are_kept_for_passthrough() -> None:
    data = {**WATS_MD_EXAMPLE, "futureField": {"x": 1}}
    data["root"] = {**data["root"], "steps": [{**data["root"]["steps"][0], "vendorInfo": "abc"}]}
    out = parse_report(data).to_wsjf()
    assert out["futureField"] == {"x": 1}
    assert out["root"]["steps"][0]["vendorInfo"] == "abc"


def test_steps_under_a_step_that_is_not_a_sequence_call_pass_through() -> None:
    # Only a SequenceCall holds child steps; a tester's "steps" elsewhere is an
    # unknown field, kept as it is (it crashed the step numbering before).
    nested = [{"stepType": "Action", "name": "inner"}]
    data = {"pn": "p", "sn": "s", "root": {"stepType": "SequenceCall", "name": "Main",
            "steps": [{"stepType": "Action", "name": "outer", "steps": nested}]}}  # fmt: skip
    (outer,) = parse_report(data).to_wsjf()["root"]["steps"]
    assert outer["id"] == 1 and outer["steps"] == nested


def test_dump_checked_says_when_the_serializer_met_an_unvalidated_value() -> None:
    report = UUTReport(pn="p", sn="s")
    report.misc_infos.append(MiscInfo(description="Firmware", text="7.1"))
    data, validated = dump_checked(report)
    assert validated and data["miscInfos"] == [{"description": "Firmware", "text": "7.1"}]
    report.misc_infos.append({"text": "no description"})  # type: ignore[arg-type]
    data, validated = dump_checked(report)
    assert not validated and data["miscInfos"][1] == {"text": "no description"}


def test_start_set_after_construction_moves_the_derived_utc_start_too() -> None:
    # Converters often build the report first and set start once they read it.
    report = UUTReport(pn="p", sn="s")
    report.start = datetime(2026, 3, 2, 9, 15, tzinfo=timezone(timedelta(hours=1)))
    assert report.to_wsjf()["startUTC"] == "2026-03-02T08:15:00Z"
    given = parse_report({"pn": "p", "sn": "s", "startUTC": "2026-03-02T08:15:30Z"})
    given.start = datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert given.to_wsjf()["startUTC"] == "2026-03-02T08:15:30Z"  # given, so kept


def test_repair_report() -> None:
    report = parse_report(
        {
            "type": "R",
            "pn": "PSU-200",
            "sn": "SN000123",
            "uur": {"user": "tech1", "refUUT": "0b6c3a52-5f41-4d7e-9a57-2f1d8c4e9b10"},
            "subUnits": [{"pn": "U7", "sn": "X1", "failures": [{"category": "Component"}]}],
        }
    )
    assert isinstance(report, UURReport)
    out = report.to_wsjf()
    assert out["type"] == "R"
    assert out["uur"]["refUUT"] == "0b6c3a52-5f41-4d7e-9a57-2f1d8c4e9b10"
    assert out["subUnits"][0]["failures"] == [{"category": "Component"}]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pn": ""}, "pn"),
        ({"sn": "   "}, "sn"),
        ({"result": "X"}, "result"),
        ({"id": "not-a-guid"}, "id"),
        ({"processCode": "ten"}, "processCode"),
        ({"start": "yesterday"}, "start"),
    ],
)
def test_invalid_headers_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_report({**WATS_MD_EXAMPLE, **change})
    assert field in str(info.value)


def test_measurement_limits_must_match_operator() -> None:
    with pytest.raises(ValidationError, match="needs lowLimit and highLimit"):
        NumericMeasurement(value=1.0, comp_op="GELE", low_limit=0.0)
    with pytest.raises(ValidationError, match="needs lowLimit"):
        NumericMeasurement(value=1.0, comp_op="GE")
    with pytest.raises(ValidationError):
        NumericMeasurement(value=float("nan"))


@pytest.mark.parametrize(
    ("op", "value", "low", "high", "passed"),
    [
        ("LOG", 1, None, None, True),
        ("EQ", 2, 2, None, True),
        ("NE", 2, 2, None, False),
        ("LT", 1, 2, None, True),
        ("GE", 2, 2, None, True),
        ("GT", 2, 2, None, False),
        ("GELE", 5.1, 4.9, 5.1, True),
        ("GELT", 5.1, 4.9, 5.1, False),
        ("GTLE", 4.9, 4.9, 5.1, False),
        ("LTGT", 4.0, 4.9, 5.1, True),
        ("LTGT", 5.0, 4.9, 5.1, False),
        ("LEGE", 4.9, 4.9, 5.1, True),
        ("EQT", 5.04, 5.0, 0.05, True),
        ("EQT", 5.06, 5.0, 0.05, False),
    ],
)
def test_compare_numeric(
    op: str, value: float, low: float | None, high: float | None, passed: bool
) -> None:
    assert compare_numeric(op, value, low, high) is passed


# --- round-trip property --------------------------------------------------------

_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12)
_number = st.floats(allow_nan=False, allow_infinity=False, width=32)
_status = st.sampled_from(["P", "F", "S", "D", "E", "T"])


@st.composite
def _measurement(draw: st.DrawFn) -> NumericMeasurement:
    op = draw(st.sampled_from(["LOG", "GE", "LT", "GELE", "LTGT", "EQT"]))
    low = draw(_number) if op != "LOG" else None
    high = draw(_number) if op in ("GELE", "LTGT", "EQT") else None
    return NumericMeasurement(
        name=draw(st.none() | _text),
        value=draw(_number),
        unit=draw(st.none() | st.sampled_from(["V", "A", "Ohm", "°C"])),
        comp_op=op,
        low_limit=low,
        high_limit=high,
        status=draw(_status),
    )


# Build through lambdas: st.builds(Model, ...) would also fill the camelCase aliases
# from the model's signature.
_leaf_steps = st.one_of(
    st.builds(
        lambda name, status, meas, tot: NumericLimitStep(
            name=name, status=status, numeric_meas=meas, tot_time=tot
        ),
        _text,
        _status,
        st.lists(_measurement(), min_size=1, max_size=3),
        st.none() | st.floats(0, 1e4),
    ),
    st.builds(
        lambda name, kind, status, text: GenericStep(
            name=name, step_type=kind, status=status, report_text=text
        ),
        _text,
        st.sampled_from(["Action", "Label", "NI_Flow_If"]),
        _status,
        st.none() | _text,
    ),
    st.builds(
        lambda name, status, values: StringValueStep(
            name=name,
            status=status,
            string_meas=[{"value": v, "compOp": "LOG", "status": status} for v in values],
        ),
        _text,
        _status,
        st.lists(_text, min_size=1, max_size=2),
    ),
)
_steps = st.recursive(
    _leaf_steps,
    lambda children: st.builds(
        lambda name, status, steps: SequenceCallStep(name=name, status=status, steps=steps),
        _text,
        _status,
        st.lists(children, max_size=4),
    ),
    max_leaves=12,
)


@st.composite
def _reports(draw: st.DrawFn) -> UUTReport:
    offset = timedelta(minutes=draw(st.integers(-12 * 60, 14 * 60)))
    start = draw(
        st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))
    ).replace(microsecond=0, tzinfo=timezone(offset))
    report = UUTReport(
        pn=draw(_text.filter(str.strip)),
        sn=draw(_text.filter(str.strip)),
        rev=draw(st.text(max_size=5)),
        result=draw(st.sampled_from(["P", "F", "E", "T", "D"])),
        process_code=draw(st.integers(0, 10_000)),
        start=start,
        misc_infos=[
            MiscInfo(description=d, text=t)
            for d, t in draw(st.lists(st.tuples(_text, _text), max_size=3))
        ],
        sub_units=[
            SubUnit(pn=p, sn=n) for p, n in draw(st.lists(st.tuples(_text, _text), max_size=2))
        ],
    )
    report.steps.extend(draw(st.lists(_steps, max_size=5)))
    return report


@settings(max_examples=150, deadline=None)
@given(_reports())
def test_wsjf_round_trip(report: UUTReport) -> None:
    wire = json.loads(json.dumps(report.to_wsjf()))
    again = parse_report(wire)
    assert again.to_wsjf() == wire
    assert again.to_json() == report.to_json()


def test_typo_in_code_is_refused_but_wsjf_extras_pass() -> None:
    with pytest.raises(ValidationError, match="did you mean 'rev'"):
        UUTReport(pn="p", sn="s", revv="B")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="no field 'low'"):
        NumericMeasurement(value=1.0, low=0.0)  # type: ignore[call-arg]
    assert parse_report({**WATS_MD_EXAMPLE, "revv": "B"}).to_wsjf()["revv"] == "B"


def test_start_out_of_range_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="out of range"):
        parse_report({"pn": "a", "sn": "b", "start": "0001-01-01T00:00:00+14:00"})


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="needs time.tzset (POSIX)")
@pytest.mark.parametrize("start", ["9999-12-31T23:59:00", "0001-01-01T00:00:00"])
def test_naive_start_beyond_local_time_rules_is_a_validation_error(
    monkeypatch: pytest.MonkeyPatch, start: str
) -> None:
    """West of UTC, 9999-12-31 local overflows the C library (OverflowError before)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        with pytest.raises(ValidationError, match=rf"{start} has no UTC offset.*\+00:00"):
            parse_report({"pn": "a", "sn": "b", "start": start})
    finally:
        monkeypatch.undo()
        time.tzset()


def test_passthrough_extras_survive_assignment() -> None:
    report = parse_report({"pn": "a", "sn": "b", "root": {"name": "r", "vendor": 1}})
    assert isinstance(report, UUTReport)
    report.root.status = "F"
    assert report.to_wsjf()["root"]["vendor"] == 1


def test_a_create_step_dict_appended_as_it_is_says_to_use_create_step() -> None:
    """The likeliest first mistake of a converter author: the two dict styles look alike."""
    with pytest.raises(ValidationError) as caught:
        GenericStep.model_validate({"name": "Vout", "value": 5.02, "low": 4.9, "high": 5.1})
    message = str(caught.value)
    assert "GenericStep has no field 'value'" in message
    assert "through the converter's self.create_step(...): append that instead" in message
