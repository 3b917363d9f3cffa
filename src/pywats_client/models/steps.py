"""WSJF test steps and measurements.

Python names are snake_case; the JSON names (aliases) are WSJF's camelCase.
Unknown JSON fields are kept when parsing WSJF (``parse_report``), so a report
passed through unchanged loses nothing this model does not know about; in code
(``UUTReport(pn=..., revision=...)``) an unknown name is a typo and is refused.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "BooleanMeasurement",
    "Chart",
    "ChartSeries",
    "CompOp",
    "GenericStep",
    "LoopInfo",
    "NumericLimitStep",
    "NumericMeasurement",
    "PassFailStep",
    "SeqCallInfo",
    "SequenceCallStep",
    "Step",
    "StepGroup",
    "StepStatus",
    "StringMeasurement",
    "StringValueStep",
    "XYChartStep",
    "compare_numeric",
    "compare_string",
    "iter_steps",
    "worst_status",
]

#: Validation context key that keeps unknown WSJF fields instead of refusing them.
WSJF_PASSTHROUGH = "wsjf_passthrough"

StepStatus = Literal["P", "F", "S", "D", "E", "T"]
StepGroup = Literal["S", "M", "C"]
CompOp = Literal[
    "LOG",
    "EQ",
    "NE",
    "LT",
    "LE",
    "GT",
    "GE",
    "GTLT",
    "GTLE",
    "GELT",
    "GELE",
    "LTGT",
    "LTGE",
    "LEGT",
    "LEGE",
    "EQT",
]
StringCompOp = Literal["LOG", "CASESENSIT", "IGNORECASE", "EQ", "NE"]

_ONE_LIMIT = {"EQ", "NE", "LT", "LE", "GT", "GE"}
_TWO_LIMITS = {"GTLT", "GTLE", "GELT", "GELE", "LTGT", "LTGE", "LEGT", "LEGE", "EQT"}


class WsjfModel(BaseModel):
    """Base of every WSJF object: camelCase aliases, unknown keys kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        validate_assignment=True,
        ser_json_inf_nan="strings",
    )

    #: Constructor keywords that are not fields (the seed's conveniences).
    _keyword_aliases: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_names(cls, data: Any, info: ValidationInfo) -> Any:
        passthrough = (info.context or {}).get(WSJF_PASSTHROUGH)
        # On assignment (field_name set) only a known field changes; extras are old.
        if not isinstance(data, dict) or passthrough or info.field_name is not None:
            return data
        known = {*cls.model_fields, *cls._keyword_aliases}
        known |= {f.alias for f in cls.model_fields.values() if f.alias}
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                if key in _CREATE_STEP_KEYS:
                    hint = (
                        "; a plain dict such as {'name': ..., 'value': ..., 'low': ..., "
                        "'high': ...} becomes a step through the converter's "
                        "self.create_step(...): append that instead"
                    )
                raise ValueError(f"{cls.__name__} has no field {key!r}{hint}")
        return data


#: Keys of ``BaseConverter.create_step`` dicts that no step model has: such a dict was
#: appended to ``steps`` as it is.
_CREATE_STEP_KEYS = frozenset({"value", "low", "high", "unit", "measurements", "passed", "limit"})


def compare_numeric(op: str, value: float, low: float | None, high: float | None) -> bool:
    """Whether ``value`` passes comparison ``op`` against the limits (WATS semantics).

    One-limit operators compare against ``low``. ``EQT`` is "equal within
    tolerance": ``low`` is the nominal value and ``high`` the tolerance.
    """
    if op == "LOG":
        return True
    if op in _ONE_LIMIT:
        if low is None:
            raise ValueError(f"compOp {op} needs lowLimit")
        return {
            "EQ": value == low,
            "NE": value != low,
            "LT": value < low,
            "LE": value <= low,
            "GT": value > low,
            "GE": value >= low,
        }[op]
    if low is None or high is None:
        raise ValueError(f"compOp {op} needs lowLimit and highLimit")
    if op == "EQT":
        return abs(value - low) <= abs(high)
    lower_ok = value > low if op[:2] == "GT" else value >= low
    upper_ok = value < high if op[2:] == "LT" else value <= high
    if op.startswith(("GT", "GE")):
        return lower_ok and upper_ok
    # Outside-range operators (LTGT, LTGE, LEGT, LEGE): below low or above high.
    below = value < low if op[:2] == "LT" else value <= low
    above = value > high if op[2:] == "GT" else value >= high
    return below or above


def compare_string(op: str, value: str, limit: str | None) -> bool:
    if op == "LOG" or limit is None:
        return True
    if op == "IGNORECASE":
        return value.casefold() == limit.casefold()
    if op == "NE":
        return value != limit
    return value == limit


def _status(ok: bool) -> StepStatus:
    return "P" if ok else "F"


class NumericMeasurement(WsjfModel):
    name: str | None = None
    value: float | None = Field(None, allow_inf_nan=False)
    unit: str | None = None
    comp_op: CompOp = "LOG"
    low_limit: float | None = Field(None, allow_inf_nan=False)
    high_limit: float | None = Field(None, allow_inf_nan=False)
    status: StepStatus = "P"

    @model_validator(mode="before")
    @classmethod
    def _derive_status(cls, data: Any) -> Any:
        """A measurement built without a status gets the one its limits give."""
        if isinstance(data, dict) and "status" not in data:
            value = data.get("value")
            op = data.get("comp_op", data.get("compOp", "LOG"))
            low = data.get("low_limit", data.get("lowLimit"))
            high = data.get("high_limit", data.get("highLimit"))
            if isinstance(value, (int, float)) and op in (_ONE_LIMIT | _TWO_LIMITS | {"LOG"}):
                try:
                    data = {**data, "status": _status(compare_numeric(op, value, low, high))}
                except (ValueError, TypeError):
                    pass  # the field validators below report the missing limit
        return data

    @model_validator(mode="after")
    def _limits_match_operator(self) -> NumericMeasurement:
        if self.comp_op in _ONE_LIMIT and self.low_limit is None:
            raise ValueError(f"compOp {self.comp_op} needs lowLimit")
        if self.comp_op in _TWO_LIMITS and (self.low_limit is None or self.high_limit is None):
            raise ValueError(f"compOp {self.comp_op} needs lowLimit and highLimit")
        return self


class BooleanMeasurement(WsjfModel):
    name: str | None = None
    status: StepStatus = "P"


class StringMeasurement(WsjfModel):
    name: str | None = None
    value: str | None = None
    comp_op: StringCompOp = "LOG"
    limit: str | None = None
    status: StepStatus = "P"

    @model_validator(mode="before")
    @classmethod
    def _derive_status(cls, data: Any) -> Any:
        if isinstance(data, dict) and "status" not in data and isinstance(data.get("value"), str):
            op = str(data.get("comp_op", data.get("compOp", "LOG")))
            limit = data.get("limit")
            ok = compare_string(op, data["value"], limit if isinstance(limit, str) else None)
            data = {**data, "status": _status(ok)}
        return data


class SeqCallInfo(WsjfModel):
    path: str | None = None
    name: str | None = None
    version: str | None = None


class LoopInfo(WsjfModel):
    num: int | None = None
    ending_index: int | None = None
    passed: int | None = None
    failed: int | None = None


class ChartSeries(WsjfModel):
    name: str | None = None
    data_type: str | None = None
    xdata: str | None = None
    ydata: str | None = None


class Chart(WsjfModel):
    chart_type: str | None = None
    label: str | None = None
    x_label: str | None = None
    x_unit: str | None = None
    y_label: str | None = None
    y_unit: str | None = None
    series: list[ChartSeries] = Field(default_factory=list)


class Step(WsjfModel):
    """Fields every step has. ``id`` is numbered when the report is serialized."""

    id: int | None = None
    group: StepGroup = "M"
    step_type: str
    name: str = Field(min_length=1)
    status: StepStatus = "P"
    tot_time: float | None = Field(None, ge=0, allow_inf_nan=False)
    caused_uut_failure: bool | None = Field(None, alias="causedUUTFailure")
    loop: LoopInfo | None = None
    report_text: str | None = None
    error_code: int | None = None
    error_message: str | None = None


class SequenceCallStep(Step):
    step_type: Literal["SequenceCall"] = "SequenceCall"
    seq_call: SeqCallInfo | None = None
    steps: list[AnyStep] = Field(default_factory=list)


class _MeasuredStep(Step):
    """A step whose measurements give its default stepType (one/several) and status."""

    #: (python name, JSON name, single stepType, multiple stepType, measurement model)
    _measurements: ClassVar[tuple[str, str, str, str, type[BaseModel]]]

    @model_validator(mode="before")
    @classmethod
    def _derive(cls, data: Any) -> Any:
        return _derive_multi_step(data, *cls._measurements)


class NumericLimitStep(_MeasuredStep):
    """``ET_NLT`` (one measurement) or ``ET_MNLT`` (several)."""

    _measurements: ClassVar[tuple[str, str, str, str, type[BaseModel]]] = (
        "numeric_meas", "numericMeas", "ET_NLT", "ET_MNLT", NumericMeasurement
    )  # fmt: skip
    step_type: Literal["ET_NLT", "ET_MNLT"] = "ET_NLT"
    numeric_meas: list[NumericMeasurement] = Field(min_length=1)


class PassFailStep(_MeasuredStep):
    """``ET_PFT`` (one) or ``ET_MPFT`` (several pass/fail results)."""

    _measurements: ClassVar[tuple[str, str, str, str, type[BaseModel]]] = (
        "boolean_meas", "booleanMeas", "ET_PFT", "ET_MPFT", BooleanMeasurement
    )  # fmt: skip
    step_type: Literal["ET_PFT", "ET_MPFT"] = "ET_PFT"
    boolean_meas: list[BooleanMeasurement] = Field(min_length=1)


class StringValueStep(_MeasuredStep):
    """``ET_SVT`` (one) or ``ET_MSVT`` (several string comparisons)."""

    _measurements: ClassVar[tuple[str, str, str, str, type[BaseModel]]] = (
        "string_meas", "stringMeas", "ET_SVT", "ET_MSVT", StringMeasurement
    )  # fmt: skip
    step_type: Literal["ET_SVT", "ET_MSVT"] = "ET_SVT"
    string_meas: list[StringMeasurement] = Field(min_length=1)


class XYChartStep(Step):
    """``WATS_XYGMNLT``: numeric measurements plus a chart."""

    step_type: Literal["WATS_XYGMNLT"] = "WATS_XYGMNLT"
    numeric_meas: list[NumericMeasurement] = Field(default_factory=list)
    chart: Chart | None = None


class GenericStep(Step):
    """Any step without measurements (Action, Label, flow control, ...)."""

    @field_validator("step_type")
    @classmethod
    def _not_a_typed_kind(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("stepType must not be empty")
        return value


def _measurement_status(measurements: list[Any]) -> StepStatus | None:
    statuses = [
        m.get("status") if isinstance(m, dict) else getattr(m, "status", None) for m in measurements
    ]
    if not statuses or any(s is None for s in statuses):
        return None
    return "F" if "F" in statuses else "P"


def _derive_multi_step(
    data: Any, py_key: str, json_key: str, single: str, multi: str, model: type[BaseModel]
) -> Any:
    """Default stepType from the number of measurements and status from their statuses."""
    if not isinstance(data, dict):
        return data
    key = py_key if py_key in data else json_key
    measurements = data.get(key)
    if not isinstance(measurements, list):
        return data
    if measurements and not isinstance(measurements[0], (dict, BaseModel)):
        return data
    data = dict(data)
    if "step_type" not in data and "stepType" not in data:
        data["stepType"] = single if len(measurements) <= 1 else multi
    if "status" not in data:
        # Validate measurements first so their derived statuses are known.
        try:
            parsed = [
                m if isinstance(m, BaseModel) else model.model_validate(m) for m in measurements
            ]
        except ValueError:
            return data
        data[key] = parsed
        status = _measurement_status(parsed)
        if status is not None:
            data["status"] = status
    return data


_TYPED_STEPS: dict[str, str] = {
    "SequenceCall": "seq",
    "ET_NLT": "num",
    "ET_MNLT": "num",
    "ET_PFT": "pf",
    "ET_MPFT": "pf",
    "ET_SVT": "str",
    "ET_MSVT": "str",
    "WATS_XYGMNLT": "xy",
}


def _step_tag(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("stepType", value.get("step_type"))
        if kind is None:
            # Infer from the payload so hand-built dicts need not name the type.
            for key, tag in (
                ("numericMeas", "num"),
                ("numeric_meas", "num"),
                ("booleanMeas", "pf"),
                ("boolean_meas", "pf"),
                ("stringMeas", "str"),
                ("string_meas", "str"),
                ("steps", "seq"),
            ):
                if key in value:
                    return tag
            return "generic"
    else:
        kind = getattr(value, "step_type", None)
    return _TYPED_STEPS.get(str(kind), "generic")


AnyStep = Annotated[
    Annotated[SequenceCallStep, Tag("seq")]
    | Annotated[NumericLimitStep, Tag("num")]
    | Annotated[PassFailStep, Tag("pf")]
    | Annotated[StringValueStep, Tag("str")]
    | Annotated[XYChartStep, Tag("xy")]
    | Annotated[GenericStep, Tag("generic")],
    Discriminator(_step_tag),
]

SequenceCallStep.model_rebuild()


def worst_status(statuses: Iterable[object]) -> StepStatus:
    """A sequence's (or report's) status from its children's.

    Failed beats error beats terminated; anything else (passed, skipped, done)
    passes. One rule for models, plugins' dict steps and every built-in
    converter, so the same steps always give the same verdict.
    """
    present = set(statuses)
    for status in ("F", "E", "T"):
        if status in present:
            return status
    return "P"


def iter_steps(step: Step) -> list[Step]:
    """``step`` and all its descendants, depth first."""
    out: list[Step] = []
    pending = [step]
    while pending:
        current = pending.pop()
        out.append(current)
        if isinstance(current, SequenceCallStep):
            pending.extend(reversed(current.steps))
    return out
