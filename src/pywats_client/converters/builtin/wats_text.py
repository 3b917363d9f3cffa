"""WATS standard text format (``.txt``): one unit per file, TAB-separated.

Sections: ``--Header-Start--`` (``Key<TAB>Value`` lines), ``--Step-Data-Start--``
... ``--Step-Data-End--`` (13 positional step columns), and an optional footer
ending with ``--UUT-End--`` that may restate the status and error.

Stricter than the official converter on purpose: an unknown ``UUTStatus`` or
step status and a numeric step whose value is not a number are conversion
errors naming the line, instead of a report that quietly says "Passed" or
lacks the measurement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pywats_client.converters._steps import (
    MAX_STEP_DEPTH,
    NUMERIC_OPS,
    STRING_OPS,
    derive_comp_op,
    sequence_status,
)
from pywats_client.converters._text import decode_text
from pywats_client.converters._values import parse_datetime, parse_float, parse_int
from pywats_client.converters.base import BaseConverter
from pywats_client.converters.builtin._common import check_settings, file_mtime, validated
from pywats_client.core._validation import describe_validation_error
from pywats_client.models import (
    GenericStep,
    NumericLimitStep,
    NumericMeasurement,
    PassFailStep,
    SeqCallInfo,
    SequenceCallStep,
    Step,
    StepStatus,
    StringValueStep,
    UURReport,
    UUTReport,
)

__all__ = ["WatsTextConverter"]

HEADER_START = "--header-start--"
STEPS_START = "--step-data-start--"
STEPS_END = "--step-data-end--"
UUT_END = "--uut-end--"

COLUMNS = (
    "StepType",
    "StepName",
    "MeasureName",
    "Value",
    "LowLimit",
    "HighLimit",
    "CompOperator",
    "Unit",
    "Status",
    "ExecTime",
    "ReportText",
    "ErrorCode",
    "ErrorMessage",
)

_UUT_STATUS: dict[str, StepStatus] = {
    "passed": "P",
    "p": "P",
    "failed": "F",
    "f": "F",
    "error": "E",
    "e": "E",
    "terminated": "T",
    "t": "T",
}
_STEP_STATUS: dict[str, StepStatus] = {
    **_UUT_STATUS,
    "done": "D",
    "d": "D",
    "skipped": "S",
    "s": "S",
}
_PASS_VALUES = {"true": "P", "1": "P", "pass": "P", "passed": "P"}
_FAIL_VALUES = {"false": "F", "0": "F", "fail": "F", "failed": "F"}
_STEP_TYPES = (
    "SequenceCall",
    "EndSequenceCall",
    "NumericLimitTest",
    "MultipleNumericLimitTest",
    "PassFailTest",
    "StringValueTest",
    "ActionStep",
)


class _LineError(ValueError):
    def __init__(self, line_no: int, message: str) -> None:
        super().__init__(f"line {line_no}: {message}")


@dataclass
class _Sequence:
    name: str
    line_no: int
    status: StepStatus | None
    time: float | None
    steps: list[Step] = field(default_factory=list)
    #: The multiple-numeric step the previous row added, if rows may continue it.
    open_multi: NumericLimitStep | None = None


@dataclass
class _Unit:
    header: dict[str, str] = field(default_factory=dict)
    header_lines: dict[str, int] = field(default_factory=dict)
    misc: list[dict[str, str]] = field(default_factory=list)
    sub_units: list[dict[str, str]] = field(default_factory=list)
    footer: dict[str, str] = field(default_factory=dict)
    root: _Sequence = field(default_factory=lambda: _Sequence("MainSequence", 0, None, None))
    stack: list[_Sequence] = field(default_factory=list)


def _status(text: str, line_no: int, what: str = "Status") -> StepStatus | None:
    word = text.strip()
    if not word:
        return None
    status = _STEP_STATUS.get(word.lower())
    if status is None:
        raise _LineError(
            line_no,
            f"{what} {word!r} is not Passed, Failed, Error, Done, Skipped or Terminated",
        )
    return status


def _number(text: str, line_no: int, column: str) -> float | None:
    if not text.strip():
        return None
    try:
        return parse_float(text)
    except ValueError as exc:
        raise _LineError(line_no, f"{column}: {exc}") from None


class WatsTextConverter(BaseConverter):
    """WATS standard text format (--Header-Start-- ... --UUT-End--), read strictly."""

    name = "wats-text"
    description = "WATS standard text format (.txt), strict: unknown statuses are errors"
    patterns = ("*.txt",)

    def configure(self, settings: Any) -> None:
        check_settings(self.name, settings, {})
        super().configure(settings)

    def can_convert(self, file_path: Path) -> float:
        head = decode_text(self.peek(file_path, 4096))
        return 0.95 if HEADER_START in head.lower() else 0.0

    def convert(self, file_path: Path) -> UUTReport | UURReport:
        text = self.read_text(file_path)
        try:
            data = self._parse(text)
        except ValueError as exc:
            raise self.error(str(exc), file_path) from None
        if "start" not in data:
            data["start"] = file_mtime(file_path)
        return validated(self, file_path, data)

    # --- parsing ----------------------------------------------------------

    def _parse(self, text: str) -> dict[str, Any]:
        unit = _Unit()
        section = "before"
        last_line = 0
        for line_no, raw in enumerate(text.splitlines(), start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            last_line = line_no
            marker = line.strip().lower()
            if marker == HEADER_START:
                if section != "before":
                    raise _LineError(
                        line_no,
                        "a second --Header-Start--: this format holds one unit per file",
                    )
                section = "header"
            elif marker == STEPS_START:
                if section != "header":
                    raise _LineError(line_no, "--Step-Data-Start-- outside the header section")
                unit.stack = [unit.root]
                section = "steps"
            elif marker == STEPS_END:
                if section != "steps":
                    raise _LineError(line_no, "--Step-Data-End-- without --Step-Data-Start--")
                if len(unit.stack) > 1:
                    open_seq = unit.stack[-1]
                    raise _LineError(
                        line_no,
                        f"SequenceCall {open_seq.name!r} from line {open_seq.line_no} "
                        "has no EndSequenceCall",
                    )
                section = "footer"
            elif marker == UUT_END:
                if section not in ("footer", "header"):
                    raise _LineError(line_no, "--UUT-End-- before the step data ended")
                section = "end"
            elif section == "before":
                raise _LineError(line_no, "expected --Header-Start-- first")
            elif section == "header":
                self._header_line(unit, line, line_no)
            elif section == "steps":
                self._step_line(unit, line, line_no)
            elif section == "footer":
                self._footer_line(unit, line, line_no)
            else:
                raise _LineError(line_no, "text after --UUT-End--; one unit per file")
        if section == "before":
            raise ValueError("no --Header-Start-- found: not a WATS standard text file")
        if section == "steps":
            raise _LineError(
                last_line, "file ends inside the step data (no --Step-Data-End--): incomplete?"
            )
        return self._report(unit)

    @staticmethod
    def _key_value(line: str, line_no: int) -> tuple[str, list[str]]:
        fields = line.split("\t")
        key = fields[0].strip()
        if len(fields) < 2:
            raise _LineError(line_no, f"expected Key<TAB>Value, got {line.strip()[:60]!r}")
        return key, [f.strip() for f in fields[1:]]

    def _header_line(self, unit: _Unit, line: str, line_no: int) -> None:
        key, values = self._key_value(line, line_no)
        if key.lower() == "subunit":
            if len(values) < 3 or not values[2]:
                raise _LineError(
                    line_no,
                    "Subunit needs Description<TAB>PartNumber<TAB>SerialNumber[<TAB>Revision]",
                )
            sub = {"partType": values[0], "pn": values[1], "sn": values[2]}
            if len(values) > 3 and values[3]:
                sub["rev"] = values[3]
            unit.sub_units.append({k: v for k, v in sub.items() if v})
            return
        value = values[0]
        if not value:
            return
        if key in _HEADER_KEYS:
            if key in unit.header:
                raise _LineError(line_no, f"{key} already given on line {unit.header_lines[key]}")
            unit.header[key] = value
            unit.header_lines[key] = line_no
        else:
            unit.misc.append({"description": key, "text": value})

    def _footer_line(self, unit: _Unit, line: str, line_no: int) -> None:
        key, values = self._key_value(line, line_no)
        if key not in ("UUTStatus", "ErrorCode", "ErrorMessage", "ExecutionTime"):
            raise _LineError(
                line_no,
                f"{key!r} in the footer; only UUTStatus, ErrorCode, ErrorMessage and "
                "ExecutionTime may follow the step data",
            )
        if values[0]:
            unit.footer[key] = values[0]
            unit.header_lines[key] = line_no

    def _step_line(self, unit: _Unit, line: str, line_no: int) -> None:
        cells = [c.strip() for c in line.split("\t")]
        if len(cells) > len(COLUMNS) and any(cells[len(COLUMNS) :]):
            raise _LineError(line_no, f"more than {len(COLUMNS)} columns")
        cells += [""] * (len(COLUMNS) - len(cells))
        col = dict(zip(COLUMNS, cells[: len(COLUMNS)], strict=True))
        kind = col["StepType"]
        if kind == "StepType":
            return  # a column header row
        seq = unit.stack[-1]
        name = col["StepName"]
        if kind != "MultipleNumericLimitTest" or (
            seq.open_multi is not None and seq.open_multi.name != name
        ):
            seq.open_multi = None
        if kind not in _STEP_TYPES:
            raise _LineError(
                line_no, f"unknown step type {kind!r} (known: {', '.join(_STEP_TYPES)})"
            )
        if kind != "EndSequenceCall" and not name:
            raise _LineError(line_no, f"{kind} without a StepName")
        status = _status(col["Status"], line_no)
        time = _number(col["ExecTime"], line_no, "ExecTime")
        if time is not None and time < 0:
            raise _LineError(line_no, f"ExecTime {col['ExecTime']!r} is negative")
        if kind == "SequenceCall":
            if len(unit.stack) > MAX_STEP_DEPTH:
                raise _LineError(line_no, "SequenceCalls nested too deeply")
            unit.stack.append(_Sequence(name, line_no, status, time))
            return
        if kind == "EndSequenceCall":
            if len(unit.stack) == 1:
                raise _LineError(line_no, "EndSequenceCall without a SequenceCall")
            if name and name != seq.name:
                raise _LineError(
                    line_no,
                    f"EndSequenceCall {name!r} closes SequenceCall {seq.name!r} "
                    f"(line {seq.line_no})",
                )
            unit.stack.pop()
            done = SequenceCallStep(
                name=seq.name,
                steps=seq.steps,
                status=status or seq.status or sequence_status(seq.steps),
                tot_time=time if time is not None else seq.time,
            )
            unit.stack[-1].steps.append(done)
            return
        try:
            step = self._test_step(kind, col, status, time, line_no, seq)
        except ValidationError as exc:
            key, problem = describe_validation_error(exc)
            raise _LineError(line_no, f"{kind} {name!r}: {key}: {problem}") from None
        if step is not None:
            seq.steps.append(step)

    def _test_step(
        self,
        kind: str,
        col: dict[str, str],
        status: StepStatus | None,
        time: float | None,
        line_no: int,
        seq: _Sequence,
    ) -> Step | None:
        common: dict[str, Any] = {"name": col["StepName"]}
        if time is not None:
            common["tot_time"] = time
        if col["ReportText"]:
            common["report_text"] = col["ReportText"]
        if col["ErrorCode"]:
            try:
                common["error_code"] = parse_int(col["ErrorCode"])
            except ValueError as exc:
                raise _LineError(line_no, f"ErrorCode: {exc}") from None
        if col["ErrorMessage"]:
            common["error_message"] = col["ErrorMessage"]
        if kind in ("NumericLimitTest", "MultipleNumericLimitTest"):
            measurement = self._numeric(col, status, line_no)
            if kind == "MultipleNumericLimitTest" and seq.open_multi is not None:
                multi = seq.open_multi
                multi.numeric_meas = [*multi.numeric_meas, measurement]
                multi.step_type = "ET_MNLT"
                statuses = {m.status for m in multi.numeric_meas}
                multi.status = "F" if "F" in statuses else multi.status
                return None
            step = NumericLimitStep(
                **common,
                numeric_meas=[measurement],
                step_type="ET_MNLT" if kind == "MultipleNumericLimitTest" else "ET_NLT",
                status=status or measurement.status,
            )
            if kind == "MultipleNumericLimitTest":
                seq.open_multi = step
            return step
        if kind == "PassFailTest":
            value = col["Value"].lower()
            from_value = _PASS_VALUES.get(value) or _FAIL_VALUES.get(value)
            if value and from_value is None:
                raise _LineError(
                    line_no,
                    f"PassFailTest Value {col['Value']!r} is not TRUE/FALSE, 1/0 or PASS/FAIL",
                )
            final = status or from_value
            if final is None:
                raise _LineError(line_no, "PassFailTest needs a Value or a Status")
            return PassFailStep(
                **common,
                status=final,
                boolean_meas=[{"name": col["MeasureName"] or None, "status": from_value or final}],
            )
        if kind == "StringValueTest":
            limit = col["LowLimit"] or None
            op = col["CompOperator"].upper() or ("CASESENSIT" if limit is not None else "LOG")
            if op not in STRING_OPS:
                raise _LineError(line_no, f"CompOperator {op!r} is not a string comparison")
            meas: dict[str, Any] = {"value": col["Value"], "compOp": op, "limit": limit}
            if col["MeasureName"]:
                meas["name"] = col["MeasureName"]
            if status is not None:
                meas["status"] = status
            step_s = StringValueStep(**common, string_meas=[meas])
            if status is not None:
                step_s.status = status
            return step_s
        return GenericStep(**common, step_type="Action", status=status or "D")

    @staticmethod
    def _numeric(
        col: dict[str, str], status: StepStatus | None, line_no: int
    ) -> NumericMeasurement:
        if not col["Value"]:
            raise _LineError(line_no, f"numeric step {col['StepName']!r} has no Value")
        value = _number(col["Value"], line_no, "Value")
        low = _number(col["LowLimit"], line_no, "LowLimit")
        high = _number(col["HighLimit"], line_no, "HighLimit")
        op = col["CompOperator"].upper() or derive_comp_op(low, high)
        if op not in NUMERIC_OPS:
            raise _LineError(line_no, f"CompOperator {col['CompOperator']!r} is not known")
        if op in {"EQ", "NE", "LT", "LE", "GT", "GE"} and low is None and high is not None:
            low, high = high, None
        data: dict[str, Any] = {"value": value, "compOp": op}
        for key, item in (
            ("lowLimit", low),
            ("highLimit", high),
            ("unit", col["Unit"] or None),
            ("name", col["MeasureName"] or None),
            ("status", status),
        ):
            if item is not None:
                data[key] = item
        try:
            return NumericMeasurement.model_validate(data)
        except ValidationError as exc:
            key, problem = describe_validation_error(exc)
            raise _LineError(line_no, f"{col['StepName']!r}: {key}: {problem}") from None

    # --- the report -------------------------------------------------------

    def _report(self, unit: _Unit) -> dict[str, Any]:
        values = {**unit.header, **unit.footer}
        lines = unit.header_lines

        def number(key: str, parse: Any) -> Any:
            if key not in values:
                return None
            try:
                return parse(values[key])
            except ValueError as exc:
                raise _LineError(lines[key], f"{key}: {exc}") from None

        report: dict[str, Any] = {"type": "T"}
        for key, target in (
            ("SerialNumber", "sn"),
            ("PartNumber", "pn"),
            ("Revision", "rev"),
            ("OperationTypeName", "processName"),
            ("StationName", "machineName"),
        ):
            if key in values:
                report[target] = values[key]
        for key in ("SerialNumber", "PartNumber"):
            if key not in values:
                raise ValueError(f"the header has no {key}; every unit needs one")
        code = number("OperationTypeCode", parse_int)
        if code is not None:
            report["processCode"] = code
        if "UUTStatus" in values:
            result = _UUT_STATUS.get(values["UUTStatus"].lower())
            if result is None:
                raise _LineError(
                    lines["UUTStatus"],
                    f"UUTStatus {values['UUTStatus']!r} is not Passed, Failed, Error or "
                    "Terminated (P/F/E/T)",
                )
            report["result"] = result
        else:
            report["result"] = sequence_status(unit.root.steps)
        start = number("StartDateTime", parse_datetime)
        start_utc = number("UTCStartDateTime", parse_datetime)
        if start is not None:
            report["start"] = start
        elif start_utc is not None:
            report["start"] = start_utc
        if start_utc is not None:
            report["startUTC"] = start_utc
        uut: dict[str, Any] = {}
        for key, target in (
            ("OperatorName", "user"),
            ("BatchSerialNumber", "batchSN"),
            ("Comment", "comment"),
            ("FixtureId", "fixtureId"),
            ("ErrorMessage", "errorMessage"),
        ):
            if key in values:
                uut[target] = values[key]
        for key, target, parse in (
            ("ErrorCode", "errorCode", parse_int),
            ("ExecutionTime", "execTime", parse_float),
            ("TestSocketIndex", "testSocketIndex", parse_int),
        ):
            parsed = number(key, parse)
            if parsed is not None:
                uut[target] = parsed
        if uut:
            report["uut"] = uut
        root = SequenceCallStep(
            name="MainSequence", steps=unit.root.steps, status=sequence_status(unit.root.steps)
        )
        if "SoftwareName" in values or "SoftwareVersion" in values:
            root.seq_call = SeqCallInfo(
                name=values.get("SoftwareName"), version=values.get("SoftwareVersion")
            )
        report["root"] = root
        if unit.misc:
            report["miscInfos"] = unit.misc
        if unit.sub_units:
            report["subUnits"] = unit.sub_units
        return report


_HEADER_KEYS = {
    "SerialNumber",
    "PartNumber",
    "Revision",
    "OperationTypeName",
    "OperationTypeCode",
    "StationName",
    "OperatorName",
    "SoftwareName",
    "SoftwareVersion",
    "BatchSerialNumber",
    "Comment",
    "FixtureId",
    "UUTStatus",
    "ErrorCode",
    "ErrorMessage",
    "StartDateTime",
    "UTCStartDateTime",
    "ExecutionTime",
    "TestSocketIndex",
}
