"""The simple result format behind ``BaseConverter.parse_test_file``.

The seed README's converter calls ``self.parse_test_file(path)`` and reads
``part_number``, ``serial_number``, ``revision``, ``passed``, ``start_time``
and ``steps`` from the result, so this is a documented default parser for a
plain key/value text file (or the same data as a JSON object). Format, with
``docs/converters.md`` as the reference::

    # comment
    part_number = PCBA-100
    serial_number = SN-0001
    revision = B
    start_time = 2026-03-01T09:15:00+01:00
    operator = anna
    step = Vout | value=5.02 | unit=V | low=4.9 | high=5.1
    sequence = Power rails
    step = 3V3 | value=3.31 | low=3.2 | high=3.4 | unit=V
    end
    step = LED check | passed=yes
    step = Firmware | value=1.4.2 | limit=1.4.2

``key: value`` works as well as ``key = value``. Step attributes are the keys
``BaseConverter.create_step`` takes. Everything is checked strictly and a
problem names its line.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from pywats_client.converters._steps import MAX_STEP_DEPTH, build_step
from pywats_client.converters._values import parse_bool, parse_datetime, parse_float

__all__ = ["parse_test_data"]

_HEADER_ALIASES = {
    "pn": "part_number",
    "partnumber": "part_number",
    "part_no": "part_number",
    "part": "part_number",
    "sn": "serial_number",
    "serialnumber": "serial_number",
    "serial": "serial_number",
    "serial_no": "serial_number",
    "rev": "revision",
    "start": "start_time",
    "starttime": "start_time",
    "start_date_time": "start_time",
    "datetime": "start_time",
    "date_time": "start_time",
    "result": "passed",
    "pass_fail": "passed",
    "status": "passed",
}
_NUMBER_ATTRS = {"low", "high", "low_limit", "high_limit", "min", "max", "time", "duration"}


def _key(raw: str) -> str:
    key = re.sub(r"[\s\-]+", "_", raw.strip().lower())
    return _HEADER_ALIASES.get(key, key)


def parse_test_data(text: str, *, default_start: datetime) -> dict[str, Any]:
    """The test data in ``text`` (key/value lines or a JSON object).

    Raises ``ValueError`` naming the line (or JSON key) at fault.
    """
    stripped = text.lstrip()
    data = _from_json(stripped) if stripped.startswith("{") else _from_lines(text)
    return _finish(data, default_start)


def _from_json(text: str) -> dict[str, Any]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
    except RecursionError:
        raise ValueError("JSON is nested too deeply") from None
    except ValueError:  # an integer of more than sys.get_int_max_str_digits() digits
        raise ValueError("JSON holds a number too long to read (thousands of digits)") from None
    if not isinstance(raw, dict):
        raise ValueError("JSON test data must be an object ({...})")
    data: dict[str, Any] = {}
    for raw_key, value in raw.items():
        key = _key(raw_key)
        if key in data:
            raise ValueError(f"key {raw_key!r} given twice (as {key!r})")
        data[key] = value
    if "passed" in data and isinstance(data["passed"], str):
        data["passed"] = parse_bool(data["passed"])
    steps = data.get("steps", [])
    if not isinstance(steps, list):
        raise ValueError("'steps' must be a list")
    for index, step in enumerate(steps):
        try:
            build_step(step)
        except ValueError as exc:
            raise ValueError(f"steps[{index}]: {exc}") from None
    return data


def _split_key_value(line: str) -> tuple[str, str] | None:
    positions = [p for p in (line.find("="), line.find(":")) if p > 0]
    if not positions:
        return None
    cut = min(positions)
    return line[:cut].strip(), line[cut + 1 :].strip()


def _step_dict(value: str, line_no: int) -> dict[str, Any]:
    name, *attributes = (part.strip() for part in value.split("|"))
    if not name:
        raise ValueError(f"line {line_no}: a step needs a name before the first '|'")
    step: dict[str, Any] = {"name": name}
    for attribute in attributes:
        if not attribute:
            continue
        key, sep, raw = attribute.partition("=")
        key = key.strip().lower()
        raw = raw.strip()
        if not sep or not key:
            raise ValueError(f"line {line_no}: step attribute {attribute!r} is not key=value")
        if key in step:
            raise ValueError(f"line {line_no}: step attribute {key!r} given twice")
        step[key] = raw
    try:
        for key in _NUMBER_ATTRS & step.keys():
            step[key] = parse_float(step[key])
        if "passed" in step:
            step["passed"] = parse_bool(step["passed"])
        if "value" in step and "limit" not in step:
            try:
                step["value"] = parse_float(step["value"])
            except ValueError:
                pass  # a text value: a string step
        build_step(step)
    except ValueError as exc:
        raise ValueError(f"line {line_no}: {exc}") from None
    return step


def _from_lines(text: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    seen: dict[str, int] = {}
    top: list[dict[str, Any]] = []
    stack: list[tuple[dict[str, Any], int]] = []

    def current() -> list[dict[str, Any]]:
        if not stack:
            return top
        children: list[dict[str, Any]] = stack[-1][0]["steps"]
        return children

    for line_no, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.lower() in ("end", "end_sequence", "endsequence"):
            if not stack:
                raise ValueError(f"line {line_no}: 'end' without an open 'sequence'")
            stack.pop()
            continue
        pair = _split_key_value(line)
        if pair is None:
            raise ValueError(f"line {line_no}: expected 'key = value', got {line[:60]!r}")
        raw_key, value = pair
        key = _key(raw_key)
        if key == "step":
            current().append(_step_dict(value, line_no))
        elif key == "sequence":
            if len(stack) >= MAX_STEP_DEPTH:
                raise ValueError(f"line {line_no}: sequences nested too deeply")
            sequence = _step_dict(value, line_no)
            sequence["steps"] = []
            current().append(sequence)
            stack.append((sequence, line_no))
        elif key in ("end", "end_sequence"):
            if not stack:
                raise ValueError(f"line {line_no}: 'end' without an open 'sequence'")
            stack.pop()
        else:
            if key in seen:
                raise ValueError(f"line {line_no}: {raw_key!r} already given on line {seen[key]}")
            seen[key] = line_no
            try:
                data[key] = parse_bool(value) if key == "passed" else value
            except ValueError as exc:
                raise ValueError(f"line {line_no}: {exc}") from None
    if stack:
        sequence, opened = stack[-1]
        raise ValueError(f"sequence {sequence['name']!r} opened on line {opened} has no 'end'")
    data["steps"] = top
    return data


def _finish(data: dict[str, Any], default_start: datetime) -> dict[str, Any]:
    for key in ("part_number", "serial_number"):
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"'{key}' is missing or empty; every result needs one")
        data[key] = value.strip()
    revision = data.get("revision", "")
    data["revision"] = "" if revision is None else str(revision).strip()
    start = data.get("start_time")
    if start is None or start == "":
        data["start_time"] = default_start
    elif isinstance(start, str):
        data["start_time"] = parse_datetime(start)
    elif not isinstance(start, datetime):
        raise ValueError(f"'start_time' must be a date-time string, got {start!r}")
    data.setdefault("steps", [])
    if "passed" not in data or data["passed"] is None:
        statuses = {build_step(step).status for step in data["steps"]}
        data["passed"] = not statuses & {"F", "E", "T"}
    elif not isinstance(data["passed"], bool):
        raise ValueError(f"'passed' must be true or false, got {data['passed']!r}")
    return data
