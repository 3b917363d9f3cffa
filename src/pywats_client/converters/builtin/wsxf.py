"""WATS standard XML format (WSXF), namespace ``http://wats.virinco.com/schemas/WATS/Report/wsxf``.

``<Reports>`` holds one ``<Report type="UUT|UUR">`` per unit; header values are
attributes, result and status words are spelled out (``Passed``), and steps
nest as ``<Step>`` elements carrying ``<NumericLimit>``, ``<PassFail>``,
``<StringValue>``, ``<SequenceCall>``, ``<Loop>`` and ``<Chart>`` payloads.
Attribute names are matched without regard to case; namespaces are ignored
so that files written without the namespace are read as well.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from pywats_client.converters._steps import MAX_STEP_DEPTH
from pywats_client.converters._values import (
    parse_bool,
    parse_datetime,
    parse_float,
    parse_int,
)
from pywats_client.converters._xml import attr, child, children, local_name, text_of
from pywats_client.converters.builtin._common import (
    XmlConverter,
    build_reports,
    load_xml,
)
from pywats_client.models import UURReport, UUTReport
from pywats_client.models.steps import worst_status

__all__ = ["WSXF_NAMESPACE", "WsxfConverter"]

WSXF_NAMESPACE = "http://wats.virinco.com/schemas/WATS/Report/wsxf"

_STATUS = {
    "passed": "P",
    "failed": "F",
    "error": "E",
    "done": "D",
    "skipped": "S",
    "terminated": "T",
}
_STATUS.update({v.lower(): v for v in _STATUS.values()})
_GROUPS = {"main": "M", "setup": "S", "cleanup": "C", "m": "M", "s": "S", "c": "C"}


class _Bad(ValueError):
    """A problem at an element; the message names it."""


def _where(element: ET.Element) -> str:
    name = attr(element, "Name")
    return f"<{local_name(element)}{f' Name={name!r}' if name else ''}>"


def _status(element: ET.Element, *, required: bool = False, name: str = "Status") -> str | None:
    word = attr(element, name)
    if word is None:
        if required:
            raise _Bad(f"{_where(element)} has no {name}")
        return None
    status = _STATUS.get(word.lower())
    if status is None:
        raise _Bad(
            f"{_where(element)} {name}={word!r} is not Passed, Failed, Error, Done, "
            "Skipped or Terminated"
        )
    return status


def _num(element: ET.Element, *names: str) -> float | None:
    raw = attr(element, *names)
    if raw is None:
        return None
    try:
        return parse_float(raw)
    except ValueError as exc:
        raise _Bad(f"{_where(element)} {names[0]}: {exc}") from None


def _int(element: ET.Element, *names: str) -> int | None:
    raw = attr(element, *names)
    if raw is None:
        return None
    try:
        return parse_int(raw)
    except ValueError as exc:
        raise _Bad(f"{_where(element)} {names[0]}: {exc}") from None


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = value


class WsxfConverter(XmlConverter):
    """WATS standard XML format (WSXF): one or more <Report> elements."""

    name = "wsxf"
    description = "WATS standard XML format (WSXF) reports"
    patterns = ("*.xml", "*.wsxf")

    def can_convert(self, file_path: Path) -> float:
        head = self.peek(file_path)
        if WSXF_NAMESPACE.encode() in head:
            return 0.95
        return 0.6 if b"<Reports" in head and b"<Report " in head else 0.0

    def convert(self, file_path: Path) -> list[UUTReport | UURReport]:
        root = load_xml(self, file_path)
        if local_name(root) == "Reports":
            elements = list(children(root, "Report"))
        elif local_name(root) == "Report":
            elements = [root]
        else:
            raise self.error(
                f"root element is <{local_name(root)}>, not <Reports> or <Report>", file_path
            )
        if not elements:
            raise self.error("<Reports> holds no <Report>", file_path)
        return build_reports(self, file_path, elements, "report", self._report, _Bad)

    # --- header -----------------------------------------------------------

    def _report(self, element: ET.Element) -> dict[str, Any]:
        kind = (attr(element, "type") or "UUT").upper()
        if kind not in ("UUT", "UUR", "T", "R"):
            raise _Bad(f"<Report type={kind!r}> is not UUT or UUR")
        is_repair = kind in ("UUR", "R")
        report: dict[str, Any] = {"type": "R" if is_repair else "T"}
        for target, names in (
            ("id", ("ID",)),
            ("sn", ("SN",)),
            ("pn", ("PN",)),
            ("rev", ("Rev",)),
            ("machineName", ("MachineName",)),
            ("location", ("Location",)),
            ("purpose", ("Purpose",)),
            ("productName", ("ProductName",)),
            ("origin", ("Origin",)),
        ):
            _put(report, target, attr(element, *names))
        for key in ("sn", "pn"):
            if key not in report:
                raise _Bad(f"<Report> has no {key.upper()} attribute")
        result = _status(element, name="Result")
        if result == "S":
            raise _Bad("<Report Result='Skipped'> is not a result a unit can have")
        for target, name in (("start", "Start"), ("startUTC", "Start_utc")):
            raw = attr(element, name, name.replace("_", ""))
            if raw is not None:
                try:
                    report[target] = parse_datetime(raw)
                except ValueError as exc:
                    raise _Bad(f"<Report {name}>: {exc}") from None
        if "start" not in report and "startUTC" in report:
            report["start"] = report["startUTC"]

        process = child(element, "Process")
        if process is not None:
            _put(report, "processCode", _int(process, "Code"))
            _put(report, "processName", attr(process, "Name"))
        misc = []
        for item in children(element, "MiscInfo"):
            description = attr(item, "Description")
            if description is None:
                raise _Bad("<MiscInfo> without a Description")
            entry: dict[str, Any] = {"description": description}
            _put(entry, "text", text_of(item))
            _put(entry, "numeric", _num(item, "Numeric"))
            misc.append(entry)
        if misc:
            report["miscInfos"] = misc
        subs = []
        for item in children(element, "ReportUnitHierarchy"):
            sub: dict[str, Any] = {}
            for target, name in (
                ("partType", "PartType"),
                ("pn", "PN"),
                ("sn", "SN"),
                ("rev", "Rev"),
            ):
                _put(sub, target, attr(item, name))
            _put(sub, "position", _int(item, "Position"))
            subs.append(sub)
        if subs:
            report["subUnits"] = subs

        if is_repair:
            report["uur"] = self._uur(child(element, "UUR"))
            report["result"] = result or "D"
            return report
        report["uut"] = self._uut(child(element, "UUT"))
        report["root"] = self._root(list(children(element, "Step")))
        derived = report["root"].get("status") or "P"
        report["result"] = result or ("D" if derived == "S" else derived)
        return report

    @staticmethod
    def _uut(element: ET.Element | None) -> dict[str, Any]:
        uut: dict[str, Any] = {}
        if element is None:
            return uut
        for target, names in (
            ("user", ("UserLoginName", "User", "Operator")),
            ("batchSN", ("BatchSN",)),
            ("fixtureId", ("FixtureId",)),
            ("errorMessage", ("ErrorMessage",)),
        ):
            _put(uut, target, attr(element, *names))
        _put(uut, "execTime", _num(element, "ExecutionTime", "ExecTime"))
        _put(uut, "testSocketIndex", _int(element, "TestSocketIndex"))
        _put(uut, "errorCode", _int(element, "ErrorCode"))
        _put(uut, "batchFailCount", _int(element, "BatchFailCount"))
        _put(uut, "comment", text_of(child(element, "Comment")) or attr(element, "Comment"))
        return uut

    @staticmethod
    def _uur(element: ET.Element | None) -> dict[str, Any]:
        uur: dict[str, Any] = {}
        if element is None:
            return uur
        _put(uur, "user", attr(element, "UserLoginName", "User", "Operator"))
        _put(uur, "refUUT", attr(element, "RefUUT", "ReferencedUUT"))
        _put(uur, "execTime", _num(element, "ExecutionTime", "ExecTime"))
        _put(uur, "processCode", _int(element, "ProcessCode"))
        _put(uur, "processName", attr(element, "ProcessName"))
        _put(uur, "comment", text_of(child(element, "Comment")) or attr(element, "Comment"))
        for target, name in (("confirmDate", "ConfirmDate"), ("finalizeDate", "FinalizeDate")):
            raw = attr(element, name)
            if raw is not None:
                try:
                    uur[target] = parse_datetime(raw)
                except ValueError as exc:
                    raise _Bad(f"<UUR {name}>: {exc}") from None
        return uur

    # --- steps --------------------------------------------------------------

    def _root(self, steps: list[ET.Element]) -> dict[str, Any]:
        if len(steps) == 1 and (attr(steps[0], "StepType") or "") == "SequenceCall":
            return self._step(steps[0], 0)
        children_ = [self._step(item, 1) for item in steps]
        return {
            "stepType": "SequenceCall",
            "name": "MainSequence",
            "status": _dict_sequence_status(children_),
            "steps": children_,
        }

    def _step(self, element: ET.Element, depth: int) -> dict[str, Any]:
        if depth > MAX_STEP_DEPTH:
            raise _Bad(f"steps are nested more than {MAX_STEP_DEPTH} deep")
        name = attr(element, "Name")
        if name is None:
            raise _Bad("a <Step> has no Name")
        step_type = attr(element, "StepType") or "Action"
        step: dict[str, Any] = {"name": name, "stepType": step_type}
        _put(step, "id", _int(element, "Id"))
        group = attr(element, "Group")
        if group is not None:
            if group.lower() not in _GROUPS:
                raise _Bad(f"{_where(element)} Group={group!r} is not Main, Setup or Cleanup")
            step["group"] = _GROUPS[group.lower()]
        _put(step, "totTime", _num(element, "total_time", "TotalTime"))
        _put(step, "errorCode", _int(element, "ErrorCode"))
        _put(step, "errorMessage", attr(element, "ErrorMessage"))
        _put(step, "reportText", text_of(child(element, "ReportText")))
        caused = attr(element, "CausedUUTFailure", "caused_uut_failure")
        if caused is not None:
            try:
                step["causedUUTFailure"] = parse_bool(caused)
            except ValueError as exc:
                raise _Bad(f"{_where(element)} CausedUUTFailure: {exc}") from None
        loop = child(element, "Loop")
        if loop is not None:
            info: dict[str, Any] = {}
            for target, names in (
                ("num", ("Num", "Index")),
                ("endingIndex", ("EndingIndex",)),
                ("passed", ("Passed",)),
                ("failed", ("Failed",)),
            ):
                _put(info, target, _int(loop, *names))
            step["loop"] = info
        status = _status(element)

        if step_type == "SequenceCall":
            call = child(element, "SequenceCall")
            if call is not None:
                seq: dict[str, Any] = {}
                for target, key in (("path", "Path"), ("name", "Name"), ("version", "Version")):
                    _put(seq, target, attr(call, key))
                step["seqCall"] = seq
            step["steps"] = [self._step(item, depth + 1) for item in children(element, "Step")]
            step["status"] = status or _dict_sequence_status(step["steps"])
            return step
        if step_type in ("ET_NLT", "ET_MNLT", "WATS_XYGMNLT"):
            numeric = [self._numeric(item) for item in children(element, "NumericLimit")]
            if not numeric and step_type != "WATS_XYGMNLT":
                raise _Bad(f"{_where(element)} ({step_type}) has no <NumericLimit>")
            step["numericMeas"] = numeric
            if step_type == "WATS_XYGMNLT":
                chart = child(element, "Chart")
                if chart is not None:
                    step["chart"] = self._chart(chart)
        elif step_type in ("ET_PFT", "ET_MPFT"):
            booleans = []
            for item in children(element, "PassFail"):
                entry: dict[str, Any] = {"status": _status(item, required=True)}
                _put(entry, "name", attr(item, "Name"))
                booleans.append(entry)
            if not booleans:
                if status is None:
                    raise _Bad(f"{_where(element)} ({step_type}) has no <PassFail> and no Status")
                booleans = [{"status": status}]
            step["booleanMeas"] = booleans
        elif step_type in ("ET_SVT", "ET_MSVT"):
            strings = []
            for item in children(element, "StringValue"):
                entry = {}
                for target, names in (
                    ("name", ("Name",)),
                    ("value", ("Value",)),
                    ("limit", ("StringLimit", "Limit")),
                    ("compOp", ("CompOperator",)),
                ):
                    _put(entry, target, attr(item, *names))
                _put(entry, "status", _status(item))
                strings.append(entry)
            if not strings:
                raise _Bad(f"{_where(element)} ({step_type}) has no <StringValue>")
            step["stringMeas"] = strings
        if status is not None:
            step["status"] = status
        elif "status" not in step and not any(
            key in step for key in ("numericMeas", "booleanMeas", "stringMeas")
        ):
            step["status"] = "D"
        return step

    @staticmethod
    def _numeric(element: ET.Element) -> dict[str, Any]:
        value = _num(element, "NumericValue", "Value")
        if value is None:
            raise _Bad(f"{_where(element)} has no NumericValue")
        meas: dict[str, Any] = {"value": value}
        _put(meas, "name", attr(element, "Name"))
        _put(meas, "unit", attr(element, "Units", "Unit"))
        _put(meas, "compOp", (attr(element, "CompOperator") or "").upper() or None)
        _put(meas, "lowLimit", _num(element, "LowLimit"))
        _put(meas, "highLimit", _num(element, "HighLimit"))
        _put(meas, "status", _status(element))
        return meas

    @staticmethod
    def _chart(element: ET.Element) -> dict[str, Any]:
        chart: dict[str, Any] = {}
        for target, name in (
            ("chartType", "ChartType"),
            ("label", "Label"),
            ("xLabel", "XLabel"),
            ("xUnit", "XUnit"),
            ("yLabel", "YLabel"),
            ("yUnit", "YUnit"),
        ):
            _put(chart, target, attr(element, name))
        series = []
        for item in children(element, "Series"):
            entry: dict[str, Any] = {}
            _put(entry, "name", attr(item, "Name"))
            _put(entry, "dataType", attr(item, "DataType"))
            _put(entry, "xdata", text_of(child(item, "xdata")))
            _put(entry, "ydata", text_of(child(item, "ydata")))
            series.append(entry)
        chart["series"] = series
        return chart


def _dict_sequence_status(steps: list[dict[str, Any]]) -> str:
    """Status of a sequence from its children's (possibly not yet derived) statuses."""
    statuses: set[Any] = set()
    for step in steps:
        status = step.get("status")
        if status is None:
            for key in ("numericMeas", "booleanMeas", "stringMeas"):
                statuses.update(m.get("status") for m in step.get(key, []))
        statuses.add(status)
    return worst_status(statuses)
