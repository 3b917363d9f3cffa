"""ATML test results (IEEE 1671 family, test results schema IEEE 1636.1).

The XML several test executives (TestStand among them) export. Read subset:

* ``<TestResultsCollection>`` of ``<TestResults>`` (one report each), or a lone
  ``<TestResults>``; its ``uuid`` becomes the report id;
* UUT identity: ``<UUT><SerialNumber>`` and the ``<IdentificationNumber
  number=...>`` (part; a ``type`` mentioning "rev" gives the revision) or
  ``<ModelName>`` of its definition; operator from ``<Personnel>``; station
  from ``<TestStation>``;
* ``<ResultSet>`` start/end time and overall ``<Outcome>``;
* ``<TestGroup>`` -> sequence, ``<SessionAction>`` -> action step, ``<Test>`` ->
  numeric / string / pass-fail step from its ``<TestResult>`` data
  (``<Datum xsi:type=... value=...>``) and limits (``<LimitPair>``,
  ``<SingleLimit>``, ``<Expected>`` with GE/GT/LE/LT/EQ/NE comparators).

Namespaces are matched by local name, so the 2006, 2011 and 2013 schema
versions read the same. Anything outside this subset is ignored, not guessed.
"""

from __future__ import annotations

import math
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

from pywats_client.converters._steps import MAX_STEP_DEPTH
from pywats_client.converters._values import parse_datetime, parse_float
from pywats_client.converters._xml import attr, child, children, local_name, text_of
from pywats_client.converters.builtin._common import (
    XmlConverter,
    build_reports,
    load_xml,
)
from pywats_client.models import UURReport, UUTReport
from pywats_client.models.steps import worst_status

__all__ = ["AtmlConverter"]

_OUTCOMES = {
    "passed": "P",
    "failed": "F",
    "aborted": "T",
    "terminated": "T",
    "errored": "E",
    "error": "E",
    "done": "D",
    "notstarted": "S",
    "skipped": "S",
}
_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_COMPARATORS = {"EQ", "NE", "GT", "GE", "LT", "LE"}


class _Bad(ValueError):
    pass


def _label(element: ET.Element) -> str:
    name = attr(element, "name", "callerName", "ID")
    return f"<{local_name(element)}{f' name={name!r}' if name else ''}>"


def _outcome(element: ET.Element, tag: str = "Outcome") -> str | None:
    found = child(element, tag)
    if found is None:
        return None
    value = attr(found, "value") or ""
    if value.lower() == "userdefined":
        value = attr(found, "qualifier") or ""
    status = _OUTCOMES.get(value.lower())
    if status is None:
        raise _Bad(f"{_label(element)} has outcome {value!r}, which is not a known ATML outcome")
    return status


def _time(element: ET.Element, name: str) -> datetime | None:
    raw = attr(element, name)
    if raw is None:
        return None
    try:
        return parse_datetime(raw)
    except ValueError as exc:
        raise _Bad(f"{_label(element)} {name}: {exc}") from None


def _duration(element: ET.Element) -> float | None:
    start, end = _time(element, "startDateTime"), _time(element, "endDateTime")
    if start is None or end is None or (start.tzinfo is None) != (end.tzinfo is None):
        return None
    seconds = (end - start).total_seconds()
    return seconds if seconds >= 0 else None


def _datum_kind(datum: ET.Element) -> str:
    declared = (datum.get(_XSI_TYPE) or "").rsplit(":", 1)[-1].lower()
    if "bool" in declared:
        return "boolean"
    if "string" in declared:
        return "string"
    if declared or attr(datum, "value") is not None:
        return "number"
    return "string" if child(datum, "Value") is not None else "none"


def _datum_number(datum: ET.Element, where: str) -> float:
    raw = attr(datum, "value")
    if raw is None:
        raise _Bad(f"{where}: numeric <Datum> has no value")
    lowered = raw.strip().lower()
    if lowered in ("inf", "+inf", "infinity", "+infinity"):
        return math.inf
    if lowered in ("-inf", "-infinity"):
        return -math.inf
    try:
        return parse_float(raw)
    except ValueError as exc:
        raise _Bad(f"{where}: {exc}") from None


def _datum_text(datum: ET.Element) -> str:
    value = attr(datum, "value")
    return value if value is not None else (text_of(child(datum, "Value")) or "")


def _comparator(limit: ET.Element, where: str, default: str | None = None) -> str:
    raw = (attr(limit, "comparator") or default or "").upper()
    if raw not in _COMPARATORS and raw not in ("CIEQ", "CINE"):
        raise _Bad(f"{where}: comparator {raw or '(none)'!r} is not GE, GT, LE, LT, EQ or NE")
    return raw


def _numeric_limits(limits: ET.Element | None, where: str) -> dict[str, Any]:
    """``compOp``/``lowLimit``/``highLimit`` from an ATML ``<Limits>`` element."""
    if limits is None:
        return {"compOp": "LOG"}
    pair = child(limits, "LimitPair")
    if pair is not None:
        bounds = []
        for limit in children(pair, "Limit"):
            datum = child(limit, "Datum")
            if datum is None:
                raise _Bad(f"{where}: a <Limit> has no <Datum>")
            bounds.append((_comparator(limit, where), _datum_number(datum, where)))
        if len(bounds) != 2:
            raise _Bad(f"{where}: <LimitPair> needs exactly two <Limit> elements")
        finite = [(op, value) for op, value in bounds if math.isfinite(value)]
        if len(finite) == 1:
            return _single(*finite[0])
        if not finite:
            return {"compOp": "LOG"}
        greater = [b for b in bounds if b[0] in ("GE", "GT")]
        less = [b for b in bounds if b[0] in ("LE", "LT")]
        if len(greater) != 1 or len(less) != 1:
            raise _Bad(f"{where}: <LimitPair> needs one GE/GT and one LE/LT limit")
        operator = (attr(pair, "operator") or "AND").upper()
        if operator == "AND":
            return {
                "compOp": greater[0][0] + less[0][0],
                "lowLimit": greater[0][1],
                "highLimit": less[0][1],
            }
        if operator == "OR":
            return {
                "compOp": less[0][0] + greater[0][0],
                "lowLimit": less[0][1],
                "highLimit": greater[0][1],
            }
        raise _Bad(f"{where}: <LimitPair operator={operator!r}> is not AND or OR")
    for tag, default in (("SingleLimit", None), ("Expected", "EQ")):
        single = child(limits, tag)
        if single is not None:
            datum = child(single, "Datum")
            if datum is None:
                raise _Bad(f"{where}: <{tag}> has no <Datum>")
            op = _comparator(single, where, default)
            value = _datum_number(datum, where)
            return _single(op, value) if math.isfinite(value) else {"compOp": "LOG"}
    return {"compOp": "LOG"}


def _single(op: str, value: float) -> dict[str, Any]:
    if op not in _COMPARATORS:
        raise _Bad(f"comparator {op!r} does not apply to numbers")
    return {"compOp": op, "lowLimit": value}


class AtmlConverter(XmlConverter):
    """ATML (IEEE 1671 / 1636.1) test results: UUT, outcome, groups and results."""

    name = "atml"
    description = "ATML test results (IEEE 1671/1636.1), e.g. from TestStand"
    patterns = ("*.xml", "*.atml")
    extra_settings = {"pn": str, "rev": str, "process_code": int, "process_name": str}

    def can_convert(self, file_path: Path) -> float:
        head = self.peek(file_path)
        if b"IEEE-1636.1" in head:
            return 0.95
        return 0.6 if b"TestResults" in head and b"ResultSet" in head else 0.0

    def convert(self, file_path: Path) -> list[UUTReport | UURReport]:
        root = load_xml(self, file_path)
        name = local_name(root)
        if name == "TestResultsCollection":
            elements = list(children(root, "TestResults"))
        elif name == "TestResults":
            elements = [root]
        else:
            raise self.error(
                f"root element is <{name}>, not <TestResultsCollection> or <TestResults>",
                file_path,
            )
        if not elements:
            raise self.error("<TestResultsCollection> holds no <TestResults>", file_path)
        return build_reports(self, file_path, elements, "TestResults", self._report, _Bad)

    def _report(self, results: ET.Element) -> dict[str, Any]:
        report: dict[str, Any] = {"type": "T"}
        raw_id = attr(results, "uuid")
        if raw_id is not None:
            try:
                report["id"] = str(uuid.UUID(raw_id))
            except ValueError:
                pass  # not a GUID: the manager derives a stable id instead
        self._identity(results, report)
        result_set = child(results, "ResultSet")
        if result_set is None:
            raise _Bad("<TestResults> has no <ResultSet>")
        start = _time(result_set, "startDateTime")
        if start is not None:
            report["start"] = start
        uut: dict[str, Any] = {}
        duration = _duration(result_set)
        if duration is not None:
            uut["execTime"] = duration
        personnel = child(results, "Personnel")
        operator = child(personnel, "SystemOperator") if personnel is not None else None
        if operator is not None and attr(operator, "name", "ID"):
            uut["user"] = attr(operator, "name", "ID")
        report["uut"] = uut
        steps = self._children(result_set, 1)
        root: dict[str, Any] = {
            "stepType": "SequenceCall",
            "name": "MainSequence",
            "steps": steps,
            "status": _worst(steps),
        }
        if attr(result_set, "name"):
            root["seqCall"] = {"name": attr(result_set, "name")}
        report["root"] = root
        outcome = _outcome(result_set)
        if outcome == "S":
            raise _Bad("the overall outcome says the test never started")
        report["result"] = outcome or _worst(steps)
        code = self.settings.get("process_code")
        if code is not None:
            report["processCode"] = code
        if self.settings.get("process_name"):
            report["processName"] = self.settings["process_name"]
        return report

    def _identity(self, results: ET.Element, report: dict[str, Any]) -> None:
        uut = child(results, "UUT")
        if uut is None:
            raise _Bad("<TestResults> has no <UUT>")
        serial = text_of(child(uut, "SerialNumber"))
        if serial is None:
            raise _Bad("<UUT> has no <SerialNumber>")
        report["sn"] = serial
        definition = child(uut, "Definition")
        identification = child(definition, "Identification") if definition is not None else None
        pn = rev = None
        if identification is not None:
            numbers = child(identification, "IdentificationNumbers")
            for number in children(numbers, "IdentificationNumber") if numbers is not None else ():
                value = attr(number, "number")
                kind = (attr(number, "type") or "").lower()
                if value is None:
                    continue
                if "rev" in kind:
                    rev = rev or value
                else:
                    pn = pn or value
            pn = pn or text_of(child(identification, "ModelName"))
        pn = pn or self.settings.get("pn")
        if not pn:
            raise _Bad(
                "<UUT> has no part number (<IdentificationNumber number=...> or <ModelName>); "
                "set converters.atml.pn for files that lack one"
            )
        report["pn"] = pn
        rev = rev or self.settings.get("rev")
        if rev:
            report["rev"] = rev
        station = child(results, "TestStation")
        if station is not None:
            station_name = text_of(child(station, "SerialNumber"))
            if station_name:
                report["machineName"] = station_name

    # --- steps --------------------------------------------------------------

    def _children(self, parent: ET.Element, depth: int) -> list[dict[str, Any]]:
        if depth > MAX_STEP_DEPTH:
            raise _Bad(f"test groups nested more than {MAX_STEP_DEPTH} deep")
        steps = []
        for element in parent:
            kind = local_name(element)
            if kind == "TestGroup":
                group_steps = self._children(element, depth + 1)
                group: dict[str, Any] = {
                    "stepType": "SequenceCall",
                    "name": attr(element, "callerName", "name") or "TestGroup",
                    "steps": group_steps,
                    "status": _outcome(element) or _worst(group_steps),
                }
                if attr(element, "name"):
                    group["seqCall"] = {"name": attr(element, "name")}
                steps.append(self._timed(group, element))
            elif kind == "SessionAction":
                action = {
                    "stepType": "Action",
                    "name": attr(element, "name") or "SessionAction",
                    "status": _outcome(element, "ActionOutcome") or "D",
                }
                steps.append(self._timed(action, element))
            elif kind == "Test":
                steps.append(self._timed(self._test(element), element))
        return steps

    @staticmethod
    def _timed(step: dict[str, Any], element: ET.Element) -> dict[str, Any]:
        duration = _duration(element)
        if duration is not None:
            step["totTime"] = duration
        return step

    def _test(self, test: ET.Element) -> dict[str, Any]:
        name = attr(test, "name") or "Test"
        where = _label(test)
        status = _outcome(test)
        measured = [
            found
            for found in (self._result(item, where) for item in children(test, "TestResult"))
            if found is not None
        ]
        kinds = {kind for kind, _ in measured}
        step: dict[str, Any] = {"name": name}
        if not measured or kinds == {"boolean"}:
            booleans = [m for _, m in measured]
            if status is None and not booleans:
                raise _Bad(f"{where} has neither an outcome nor test results")
            step["stepType"] = "ET_PFT" if len(booleans) <= 1 else "ET_MPFT"
            step["booleanMeas"] = booleans or [{"status": status}]
        elif kinds == {"number"}:
            meas = [m for _, m in measured]
            step["stepType"] = "ET_NLT" if len(meas) == 1 else "ET_MNLT"
            step["numericMeas"] = meas
        elif kinds == {"string"}:
            meas = [m for _, m in measured]
            step["stepType"] = "ET_SVT" if len(meas) == 1 else "ET_MSVT"
            step["stringMeas"] = meas
        else:  # mixed kinds: one step per result, grouped
            step["stepType"] = "SequenceCall"
            step["steps"] = [self._single_step(kind, m) for kind, m in measured]
            step["status"] = status or _worst(step["steps"])
        if status is not None:
            step["status"] = status
        return step

    @staticmethod
    def _single_step(kind: str, meas: dict[str, Any]) -> dict[str, Any]:
        name = meas.get("name") or "result"
        key, step_type = {
            "number": ("numericMeas", "ET_NLT"),
            "string": ("stringMeas", "ET_SVT"),
            "boolean": ("booleanMeas", "ET_PFT"),
        }[kind]
        step: dict[str, Any] = {"stepType": step_type, "name": name, key: [meas]}
        if "status" in meas:
            step["status"] = meas["status"]
        return step

    def _result(self, result: ET.Element, test: str) -> tuple[str, dict[str, Any]] | None:
        where = f"{test} {_label(result)}"
        status = _outcome(result)
        data = child(result, "TestData")
        datum = child(data, "Datum") if data is not None else None
        meas: dict[str, Any] = {}
        if attr(result, "name"):
            meas["name"] = attr(result, "name")
        if status is not None:
            meas["status"] = status
        limits_parent = child(result, "TestLimits")
        limits = child(limits_parent, "Limits") if limits_parent is not None else None
        if datum is None or _datum_kind(datum) == "none":
            return None if status is None else ("boolean", meas)
        kind = _datum_kind(datum)
        if kind == "boolean":
            if status is None:
                text = _datum_text(datum).lower()
                if text not in ("true", "false", "1", "0"):
                    raise _Bad(f"{where}: boolean <Datum> value {text!r} is not true/false")
                meas["status"] = "P" if text in ("true", "1") else "F"
            return "boolean", meas
        if kind == "string":
            meas["value"] = _datum_text(datum)
            expected = child(limits, "Expected") if limits is not None else None
            if expected is not None:
                op = _comparator(expected, where, "EQ")
                limit_datum = child(expected, "Datum")
                meas["limit"] = _datum_text(limit_datum) if limit_datum is not None else ""
                meas["compOp"] = {"CIEQ": "IGNORECASE", "EQ": "CASESENSIT"}.get(op, op)
                if meas["compOp"] not in ("IGNORECASE", "CASESENSIT", "NE"):
                    raise _Bad(f"{where}: comparator {op!r} does not apply to strings")
            return "string", meas
        value = _datum_number(datum, where)
        if not math.isfinite(value):
            raise _Bad(f"{where}: measured value is infinite")
        meas["value"] = value
        unit = attr(datum, "nonStandardUnit", "unit")
        if unit:
            meas["unit"] = unit
        meas.update(_numeric_limits(limits, where))
        return "number", meas


def _worst(steps: list[dict[str, Any]]) -> str:
    return worst_status(step.get("status") for step in steps)
