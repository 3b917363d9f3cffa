"""WATS UUT (test) and UUR (repair) reports, serialized as WSJF JSON.

The constructor takes WSJF's names (``pn``, ``sn``, ``processCode``...) in
snake_case or camelCase, plus the seed README's conveniences:
``pass_fail=True/False`` sets ``result`` P/F and ``start_date_time`` (a
datetime or ISO string) sets ``start``. ``report.steps`` is the list of the
root sequence's steps, so ``report.steps.append(step)`` builds the tree.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal

from pydantic import Field, TypeAdapter, field_serializer, field_validator, model_validator
from pydantic_core import PydanticSerializationError

from pywats_client.models.steps import (
    WSJF_PASSTHROUGH,
    AnyStep,
    SequenceCallStep,
    Step,
    WsjfModel,
    iter_steps,
    worst_status,
)

__all__ = [
    "MiscInfo",
    "ReportResult",
    "SubUnit",
    "UURInfo",
    "UURReport",
    "UUTInfo",
    "UUTReport",
    "parse_report",
]

ReportResult = Literal["P", "F", "E", "T", "D"]
#: How a report becomes WSJF data: JSON types, camelCase names, unset fields left out.
_WSJF_DUMP: dict[str, Any] = {"mode": "json", "by_alias": True, "exclude_none": True}

_RESULT_WORDS = {
    "passed": "P",
    "pass": "P",
    "failed": "F",
    "fail": "F",
    "error": "E",
    "terminated": "T",
    "done": "D",
}


def _aware(value: datetime) -> datetime:
    """Naive datetimes are the station's local time.

    The OS's local-time rules end somewhere (year 1 or 9999 in a zone west of
    UTC; before 1970 or after 3000 on Windows, where CPython raises OSError),
    so a date out there is a clear validation error, not a crash of the caller.
    """
    if value.tzinfo is not None:
        return value
    try:
        return value.astimezone()
    except (OSError, OverflowError, ValueError) as exc:
        raise ValueError(
            f"{value.isoformat()} has no UTC offset and cannot be read as this station's "
            f"local time ({exc}); write it with an offset (e.g. {value.isoformat()}+00:00)"
        ) from None


class MiscInfo(WsjfModel):
    description: str
    text: str | None = None
    numeric: float | None = Field(None, allow_inf_nan=False)


class SubUnit(WsjfModel):
    part_type: str | None = None
    pn: str | None = None
    rev: str | None = None
    sn: str | None = None
    position: int | None = None


class UUTInfo(WsjfModel):
    exec_time: float | None = Field(None, ge=0, allow_inf_nan=False)
    user: str | None = None
    batch_sn: str | None = Field(None, alias="batchSN")
    fixture_id: str | None = None
    test_socket_index: int | None = None
    comment: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    batch_fail_count: int | None = None
    step_id_caused_uut_failure: int | None = Field(None, alias="stepIdCausedUUTFailure")


class UURInfo(WsjfModel):
    user: str | None = None
    comment: str | None = None
    process_code: int | None = None
    process_name: str | None = None
    ref_uut: str | None = Field(None, alias="refUUT")
    confirm_date: datetime | None = None
    finalize_date: datetime | None = None
    exec_time: float | None = Field(None, ge=0, allow_inf_nan=False)


class _ReportBase(WsjfModel):
    """Header fields shared by UUT and UUR reports."""

    _keyword_aliases: ClassVar[frozenset[str]] = frozenset({"pass_fail", "start_date_time"})

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    pn: str = Field(min_length=1)
    sn: str = Field(min_length=1)
    rev: str = ""
    product_name: str | None = None
    process_code: int = 10
    process_name: str | None = None
    result: ReportResult = "P"
    machine_name: str | None = None
    location: str | None = None
    purpose: str | None = None
    origin: str | None = None
    start: datetime = Field(default_factory=lambda: datetime.now().astimezone())
    start_utc: datetime | None = Field(None, alias="startUTC")
    misc_infos: list[MiscInfo] = Field(default_factory=list)
    sub_units: list[SubUnit] = Field(default_factory=list)
    assets: list[dict[str, Any]] = Field(default_factory=list)
    asset_stats: list[dict[str, Any]] = Field(default_factory=list)
    additional_data: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _seed_conveniences(cls, data: Any) -> Any:
        """``pass_fail`` and ``start_date_time`` from the seed README."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "pass_fail" in data:
            passed = data.pop("pass_fail")
            data.setdefault("result", "P" if passed else "F")
        if "start_date_time" in data:
            data.setdefault("start", data.pop("start_date_time"))
        result = data.get("result")
        if isinstance(result, str) and result.lower() in _RESULT_WORDS:
            data["result"] = _RESULT_WORDS[result.lower()]
        return data

    @field_validator("pn", "sn")
    @classmethod
    def _strip_identity(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("start")
    @classmethod
    def _start_aware(cls, value: datetime) -> datetime:
        return _aware(value)

    @model_validator(mode="after")
    def _fill_start_utc(self) -> _ReportBase:
        # Derived (not given) startUTC follows start, also when start is set later
        # (``report.start = ...`` in a converter) instead of keeping the first value.
        given = "start_utc" in self.model_fields_set
        source = _aware(self.start_utc) if given and self.start_utc else self.start
        try:
            utc = source.astimezone(timezone.utc)
        except OverflowError:
            raise ValueError(f"start {source.isoformat()} is out of range in UTC") from None
        object.__setattr__(self, "start_utc", utc)
        return self

    @field_serializer("id")
    def _id_lower(self, value: uuid.UUID) -> str:
        return str(value).lower()

    @field_serializer("start_utc")
    def _utc_z(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")

    @property
    def pass_fail(self) -> bool:
        """True when the report passed (seed README name); follows the steps unless set."""
        self._settle_result()
        return self.result == "P"

    @property
    def start_date_time(self) -> datetime:
        """The test's start (seed README name)."""
        return self.start

    def to_wsjf(self) -> dict[str, Any]:
        """The report as WSJF JSON data (step ids numbered, empty fields left out)."""
        self._number_steps()
        return self.model_dump(**_WSJF_DUMP)

    def to_json(self) -> str:
        self._number_steps()
        return self.model_dump_json(by_alias=True, exclude_none=True)

    def _number_steps(self) -> None:
        """Give every step a unique id, keeping ids already set where they are unique."""

    def _settle_result(self) -> None:
        """Derive what was left unset from the steps appended so far."""


class UUTReport(_ReportBase):
    """A test report (WSJF ``type: "T"``)."""

    type: Literal["T"] = "T"
    uut: UUTInfo = Field(default_factory=UUTInfo)
    root: SequenceCallStep = Field(default_factory=lambda: SequenceCallStep(name="MainSequence"))

    @property
    def steps(self) -> list[AnyStep]:
        """The root sequence's steps; append to add steps to the report."""
        return self.root.steps

    def _settle_result(self) -> None:
        _validate_appended(self.root)
        root_status = _settle_status(self.root)
        if "result" not in self.model_fields_set:
            # A converter that appended a failing step but set no result must not
            # upload a failed board as passed.
            object.__setattr__(self, "result", root_status)

    def _number_steps(self) -> None:
        self._settle_result()
        all_steps = iter_steps(self.root)
        used: set[int] = set()
        # Written past validate_assignment: these ints are valid by construction,
        # and validating each again costs 0.3-0.4 s per pass over 100,000 steps.
        renumber: list[Step] = []
        for step in all_steps:
            if step.id is not None and step.id not in used:
                used.add(step.id)
            else:
                renumber.append(step)
        next_id = 0
        for step in renumber:
            while next_id in used:
                next_id += 1
            object.__setattr__(step, "id", next_id)
            used.add(next_id)


class UURReport(_ReportBase):
    """A repair report (WSJF ``type: "R"``)."""

    type: Literal["R"] = "R"
    uur: UURInfo = Field(default_factory=UURInfo)


_STEP_ADAPTER: TypeAdapter[AnyStep] = TypeAdapter(AnyStep)


def _settle_status(sequence: SequenceCallStep) -> str:
    """The status of ``sequence``: as set, or (never set) what its children give.

    Settled at serialization because a converter appends steps after building.
    """
    children = [
        _settle_status(step) if isinstance(step, SequenceCallStep) else step.status
        for step in sequence.steps
    ]
    if "status" not in sequence.model_fields_set:
        object.__setattr__(sequence, "status", worst_status(children))
    return sequence.status


def _validate_appended(sequence: SequenceCallStep) -> None:
    """Validate steps appended as plain dicts (``list.append`` bypasses pydantic)."""
    for index, child in enumerate(sequence.steps):
        if not isinstance(child, Step):
            sequence.steps[index] = child = _STEP_ADAPTER.validate_python(child)
        if isinstance(child, SequenceCallStep):
            _validate_appended(child)


def dump_checked(report: UUTReport | UURReport) -> tuple[dict[str, Any], bool]:
    """``report`` as WSJF data, and whether pydantic's serializer found all of it as
    validated model types.

    For a report built by validation and not touched after, that data needs no
    second validation. Where a plain value was put into a list (a dict appended to
    ``misc_infos``) the serializer notices, and the caller must validate the data.
    It does not notice values that never met a validator (``model_construct``, a
    list emptied after validation): only code that builds reports by validation
    may rely on it.
    """
    report._number_steps()
    try:
        return report.model_dump(**_WSJF_DUMP, warnings="error"), True
    except PydanticSerializationError:
        return report.model_dump(**_WSJF_DUMP, warnings=False), False


def parse_report(data: Any) -> UUTReport | UURReport:
    """Validate WSJF data as the report its ``type`` says (``T`` when absent).

    Fields this model does not know are kept and sent on unchanged.

    Raises ``pydantic.ValidationError`` (a ``ValueError``) naming the field at fault.
    """
    context = {WSJF_PASSTHROUGH: True}
    if isinstance(data, dict) and data.get("type") == "R":
        return UURReport.model_validate(data, context=context)
    return UUTReport.model_validate(data, context=context)
