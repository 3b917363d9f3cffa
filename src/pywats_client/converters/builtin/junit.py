"""JUnit XML (pytest ``--junitxml``, Maven Surefire, CTest, many test executives).

Each ``<testcase>`` becomes a pass/fail step, grouped into a sequence per
``<testsuite>`` and, inside it, per ``classname``. ``<failure>`` and
``<error>`` make the step failed with the message in its report text,
``<skipped>`` makes it skipped.

JUnit has no unit identity, so it comes from, in order: ``<property>``
elements of the suite (``part_number``/``pn``, ``serial_number``/``sn``,
``revision``/``rev``, ``operator``; pytest writes them with
``record_testsuite_property``), the ``filename_pattern`` setting (a regex with
named groups ``sn``, ``pn``, ``rev`` matched against the file name), the
fixed ``pn``/``sn``/``rev`` settings, and finally the suite name as part
number and the file name (without extension) as serial number.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

from pywats_client.converters._steps import MAX_STEP_DEPTH
from pywats_client.converters._text import file_mtime
from pywats_client.converters._values import parse_datetime, parse_float, parse_int
from pywats_client.converters._xml import attr, child, children, local_name
from pywats_client.converters.builtin._common import XmlConverter, load_xml, validated
from pywats_client.models import UURReport, UUTReport

__all__ = ["JUnitConverter"]

#: Longest report text kept from a failure message and its details.
MAX_REPORT_TEXT = 4000

_IDENTITY = {
    "pn": ("pn", "part_number", "partnumber", "part"),
    "sn": ("sn", "serial_number", "serialnumber", "serial"),
    "rev": ("rev", "revision"),
    "user": ("operator", "user", "operator_name"),
    "processCode": ("process_code", "processcode", "operation_code", "operationtypecode"),
    "processName": ("process_name", "processname", "operation", "operationtypename"),
}


class _Bad(ValueError):
    pass


def _key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _seconds(element: ET.Element) -> float | None:
    raw = attr(element, "time")
    if raw is None:
        return None
    try:
        value = parse_float(raw.replace(",", ""))  # some tools write 1,234.5
    except ValueError as exc:
        raise _Bad(f"<{local_name(element)} name={attr(element, 'name')!r}> time: {exc}") from None
    if value < 0:
        raise _Bad(f"<{local_name(element)} name={attr(element, 'name')!r}> time is negative")
    return value


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class JUnitConverter(XmlConverter):
    """JUnit XML test results (pytest --junitxml and many test executives)."""

    name = "junit"
    description = "JUnit XML (pytest --junitxml, Surefire, CTest...): each testcase a step"
    patterns = ("*.xml",)
    extra_settings = {
        "pn": str,
        "sn": str,
        "rev": str,
        "process_code": int,
        "process_name": str,
        "filename_pattern": str,
    }

    def configure(self, settings: Any) -> None:
        super().configure(settings)
        pattern = settings.get("filename_pattern")
        if pattern is not None:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"converters.junit.filename_pattern: not a regex ({exc})"
                ) from None
            if not set(compiled.groupindex) & {"sn", "pn", "rev"}:
                raise ValueError(
                    "converters.junit.filename_pattern: needs a named group (?P<sn>...), "
                    "(?P<pn>...) or (?P<rev>...)"
                )

    def can_convert(self, file_path: Path) -> float:
        head = self.peek(file_path)
        return 0.9 if re.search(rb"<testsuites?[\s>]", head) else 0.0

    def convert(self, file_path: Path) -> UUTReport | UURReport:
        root = load_xml(self, file_path)
        if local_name(root) not in ("testsuites", "testsuite"):
            raise self.error(
                f"root element is <{local_name(root)}>, not <testsuites> or <testsuite>",
                file_path,
            )
        try:
            data = self._report(root, file_path)
        except _Bad as exc:
            raise self.error(str(exc), file_path) from None
        return validated(self, file_path, data)

    def _report(self, root: ET.Element, file_path: Path) -> dict[str, Any]:
        suites = [root] if local_name(root) == "testsuite" else list(children(root, "testsuite"))
        properties = self._properties(root)
        for suite in suites:
            for key, value in self._properties(suite).items():
                properties.setdefault(key, value)
        steps = [self._suite(suite, 1) for suite in suites]

        report: dict[str, Any] = {"type": "T"}
        identity: dict[str, str] = {}
        pattern = self.settings.get("filename_pattern")
        if pattern:
            match = re.search(pattern, file_path.name)
            if match:
                identity.update({k: v for k, v in match.groupdict().items() if v})
        for target, names in _IDENTITY.items():
            for name in names:
                if name in properties:
                    identity.setdefault(target, properties.pop(name))
                    break
        for target in ("pn", "sn", "rev"):
            if target not in identity and self.settings.get(target):
                identity[target] = str(self.settings[target])
        if "pn" not in identity:
            identity["pn"] = (attr(suites[0], "name") if suites else None) or "junit"
        identity.setdefault("sn", file_path.stem)
        report.update({k: identity[k] for k in ("pn", "sn") if identity.get(k)})
        if identity.get("rev"):
            report["rev"] = identity["rev"]
        code = identity.get("processCode") or self.settings.get("process_code")
        if code is not None:
            try:
                report["processCode"] = parse_int(str(code))
            except ValueError as exc:
                raise _Bad(f"process code: {exc}") from None
        process_name = identity.get("processName") or self.settings.get("process_name")
        if process_name:
            report["processName"] = str(process_name)
        uut: dict[str, Any] = {}
        if identity.get("user"):
            uut["user"] = identity["user"]
        total = _seconds(root) if local_name(root) == "testsuites" else None
        if total is None:
            times = [t for t in (_seconds(s) for s in suites) if t is not None]
            total = round(sum(times), 6) if times else None
        if total is not None:
            uut["execTime"] = total
        report["uut"] = uut
        report["start"] = self._start(root, suites) or file_mtime(file_path)
        report["miscInfos"] = [
            {"description": key, "text": _truncate(value, 1000)}
            for key, value in properties.items()
        ]
        report["root"] = {
            "stepType": "SequenceCall",
            "name": "MainSequence",
            "status": _worst(steps),
            "steps": steps,
        }
        report["result"] = "F" if _worst(steps) == "F" else "P"
        return report

    @staticmethod
    def _properties(element: ET.Element) -> dict[str, str]:
        found: dict[str, str] = {}
        block = child(element, "properties")
        if block is None:
            return found
        for prop in children(block, "property"):
            name = attr(prop, "name")
            value = attr(prop, "value")
            if value is None:
                value = (prop.text or "").strip() or None
            if name and value is not None:
                found.setdefault(_key(name), value)
        return found

    @staticmethod
    def _start(root: ET.Element, suites: list[ET.Element]) -> datetime | None:
        starts = []
        for element in (root, *suites):
            raw = attr(element, "timestamp")
            if raw is None:
                continue
            try:
                starts.append(parse_datetime(raw))
            except ValueError as exc:
                raise _Bad(f"<{local_name(element)}> timestamp: {exc}") from None
        aware = [s for s in starts if s.tzinfo is not None]
        if aware:
            return min(aware)
        return min(starts) if starts else None

    def _suite(self, suite: ET.Element, depth: int) -> dict[str, Any]:
        if depth > MAX_STEP_DEPTH:
            raise _Bad(f"test suites nested more than {MAX_STEP_DEPTH} deep")
        steps: list[dict[str, Any]] = []
        groups: dict[str, dict[str, Any]] = {}
        for item in suite:
            kind = local_name(item)
            if kind == "testsuite":
                steps.append(self._suite(item, depth + 1))
            elif kind == "testcase":
                step = self._case(item)
                classname = attr(item, "classname")
                if classname:
                    group = groups.get(classname)
                    if group is None:
                        group = {"stepType": "SequenceCall", "name": classname, "steps": []}
                        groups[classname] = group
                        steps.append(group)
                    group["steps"].append(step)
                else:
                    steps.append(step)
        for group in groups.values():
            group["status"] = _worst(group["steps"])
            times = [s["totTime"] for s in group["steps"] if "totTime" in s]
            if times:
                group["totTime"] = round(sum(times), 6)
        sequence: dict[str, Any] = {
            "stepType": "SequenceCall",
            "name": attr(suite, "name") or "testsuite",
            "status": _worst(steps),
            "steps": steps,
        }
        time = _seconds(suite)
        if time is not None:
            sequence["totTime"] = time
        return sequence

    @staticmethod
    def _case(case: ET.Element) -> dict[str, Any]:
        name = attr(case, "name")
        if name is None:
            raise _Bad("a <testcase> has no name")
        status = "P"
        text = ""
        message = ""
        for outcome in case:
            kind = local_name(outcome)
            if kind in ("failure", "error"):
                status = "F"
            elif kind == "skipped":
                if status != "F":
                    status = "S"
            else:
                continue
            message = attr(outcome, "message") or ""
            detail = (outcome.text or "").strip()
            kind_text = attr(outcome, "type")
            head = f"{kind}{f' ({kind_text})' if kind_text else ''}: {message}".strip()
            text = f"{head}\n{detail}" if detail else head
            if status == "F":
                break
        step: dict[str, Any] = {
            "stepType": "ET_PFT",
            "name": _truncate(name, 200),
            "status": status,
            "booleanMeas": [{"status": status}],
        }
        time = _seconds(case)
        if time is not None:
            step["totTime"] = time
        if text:
            step["reportText"] = _truncate(text, MAX_REPORT_TEXT)
        first_line = message.strip().splitlines()[:1]
        if status == "F" and first_line:
            step["errorMessage"] = _truncate(first_line[0], 500)
        return step


def _worst(steps: list[dict[str, Any]]) -> str:
    statuses = {step.get("status") for step in steps}
    if "F" in statuses:
        return "F"
    if statuses and statuses <= {"S"}:
        return "S"
    return "P"
