"""Configurable CSV / key-value log converter.

Two layouts, detected or set with ``layout``:

* ``steps`` (one unit per file): optional header lines (``Key,Value`` rows or
  ``Key=Value`` / ``Key: Value`` lines: part number, serial number, result...),
  then a table whose header row names the step columns (step name plus value
  and/or status), one step per row. A ``group`` column nests consecutive rows
  of the same group in a sequence.
* ``units`` (several units per file): a table with one unit per row, its
  identity in some columns (serial number at least) and every other column a
  measurement; ``limits`` in the settings give them limits and units.

Column and key names are matched case-insensitively, ignoring spaces, ``_``
and ``-``; each field has common aliases and ``fields``/``columns`` in
``converters.csv`` name the ones a station really uses. See docs/converters.md.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pywats_client.converters._steps import (
    NUMERIC_OPS,
    build_step,
    derive_comp_op,
    sequence_status,
)
from pywats_client.converters._text import decode_text, file_mtime
from pywats_client.converters._values import (
    parse_datetime,
    parse_float,
    parse_int,
    parse_report_result,
    parse_step_status,
    step_status_or_none,
)
from pywats_client.converters.base import BaseConverter
from pywats_client.converters.builtin._common import check_settings, validated
from pywats_client.models import UURReport, UUTReport

__all__ = ["DEFAULT_COLUMNS", "DEFAULT_FIELDS", "CsvConverter"]

#: Report fields and the names they go by in the wild.
DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "pn": ("part number", "pn", "part no", "part", "product", "product number"),
    "sn": ("serial number", "sn", "serial", "serial no", "uut serial", "board serial"),
    "rev": ("revision", "rev", "part revision"),
    "result": ("result", "uut status", "overall result", "status", "outcome", "pass/fail"),
    "start": (
        "start time",
        "start date time",
        "date",
        "timestamp",
        "datetime",
        "start",
        "test date",
        "date time",
    ),
    "operator": ("operator", "user", "operator name", "tester"),
    "process_code": ("process code", "operation code", "operation type code"),
    "process_name": ("process name", "operation", "operation type name", "test operation"),
    "station": ("station", "station name", "machine", "machine name"),
    "batch_sn": ("batch serial number", "batch sn", "batch", "lot"),
    "fixture_id": ("fixture id", "fixture"),
    "exec_time": ("execution time", "exec time", "total time"),
    "comment": ("comment", "remarks", "note"),
}
#: Step-table columns and the names they go by.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("step", "step name", "test", "test name", "name", "parameter", "test step"),
    "value": ("value", "measured", "measured value", "measurement", "reading", "actual", "meas"),
    "unit": ("unit", "units"),
    "low": ("low", "low limit", "lower limit", "min", "ll", "lsl"),
    "high": ("high", "high limit", "upper limit", "max", "ul", "usl"),
    "status": ("status", "result", "pass/fail", "outcome", "verdict"),
    "comp": ("comp", "comp op", "comparison", "comp operator"),
    "time": ("time", "duration", "exec time", "elapsed"),
    "text": ("comment", "text", "message", "remarks", "report text"),
    "group": ("group", "sequence", "section"),
}
_DELIMITERS = (",", ";", "\t", "|")
#: Most steps (rows) accepted in one file.
MAX_ROWS = 100_000


class _Bad(ValueError):
    pass


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


@dataclass(frozen=True)
class _Row:
    line_no: int
    cells: list[str]

    @property
    def filled(self) -> list[str]:
        return [c for c in self.cells if c]


class CsvConverter(BaseConverter):
    """CSV and key-value logs, with column/field mapping in converters.csv."""

    name = "csv"
    description = "CSV / key-value logs: one unit per file (steps) or per row (units)"
    patterns = ("*.csv", "*.tsv")
    max_size = 16 * 1024 * 1024

    # --- settings -----------------------------------------------------------

    def configure(self, settings: Any) -> None:
        check_settings(
            self.name,
            settings,
            {
                "delimiter": str,
                "layout": str,
                "fields": dict,
                "columns": dict,
                "defaults": dict,
                "decimal_comma": bool,
                "date_format": str,
                "limits": dict,
                "skip_columns": list,
            },
        )
        delimiter = settings.get("delimiter", "auto")
        if delimiter != "auto" and len(delimiter) != 1:
            raise ValueError('converters.csv.delimiter: one character, or "auto"')
        if settings.get("layout", "auto") not in ("auto", "steps", "units"):
            raise ValueError('converters.csv.layout: "auto", "steps" or "units"')
        for key, known in (("fields", DEFAULT_FIELDS), ("columns", DEFAULT_COLUMNS)):
            for field_name, names in settings.get(key, {}).items():
                if field_name not in known:
                    raise ValueError(
                        f"converters.csv.{key}.{field_name}: unknown (known: {', '.join(known)})"
                    )
                if not isinstance(names, (str, list)) or (
                    isinstance(names, list) and not all(isinstance(n, str) for n in names)
                ):
                    raise ValueError(f"converters.csv.{key}.{field_name}: a name or list of names")
        for field_name in settings.get("defaults", {}):
            if field_name not in DEFAULT_FIELDS:
                raise ValueError(f"converters.csv.defaults.{field_name}: unknown field")
        for column, spec in settings.get("limits", {}).items():
            if not isinstance(spec, dict) or not set(spec) <= {"low", "high", "unit", "comp"}:
                raise ValueError(
                    f"converters.csv.limits.{column}: an object with low, high, unit, comp"
                )
        super().configure(settings)
        self.__dict__.pop("_aliases_cache", None)

    def _aliases(self, key: str, table: str) -> frozenset[str]:
        cache: dict[tuple[str, str], frozenset[str]] = self.__dict__.setdefault(
            "_aliases_cache", {}
        )
        found = cache.get((key, table))
        if found is None:
            found = cache[(key, table)] = self._compute_aliases(key, table)
        return found

    def _compute_aliases(self, key: str, table: str) -> frozenset[str]:
        defaults = DEFAULT_FIELDS if table == "fields" else DEFAULT_COLUMNS
        configured = self.settings.get(table, {}).get(key)
        if configured is None:
            names: Sequence[str] = defaults[key]
        else:
            names = [configured] if isinstance(configured, str) else configured
        return frozenset(_norm(n) for n in names)

    # --- plugin API -------------------------------------------------------

    def can_convert(self, file_path: Path) -> float:
        head = decode_text(self.peek(file_path, 4096))
        if "\x00" in head or not head.strip():
            return 0.0
        return 0.5

    def convert(self, file_path: Path) -> list[UUTReport | UURReport]:
        text = self.read_text(file_path)
        try:
            rows = self._rows(text)
            if not rows:
                raise _Bad("holds no data")
            layout = self.settings.get("layout", "auto")
            if layout == "auto":
                layout = self._detect_layout(rows)
            units = self._units(rows) if layout == "units" else [self._steps_unit(rows)]
        except _Bad as exc:
            raise self.error(str(exc), file_path) from None
        reports = []
        for index, data in enumerate(units):
            data.setdefault("start", file_mtime(file_path))
            line = data.pop("_line", None)
            where = f"unit {index} (line {line})" if len(units) > 1 else ""
            reports.append(validated(self, file_path, data, where))
        return reports

    # --- reading ------------------------------------------------------------

    def _delimiter(self, lines: list[str]) -> str:
        configured = self.settings.get("delimiter", "auto")
        if configured != "auto":
            return str(configured)
        sample = [line for line in lines if line.strip()][:20]
        counts = {d: sum(line.count(d) for line in sample) for d in _DELIMITERS}
        best = max(_DELIMITERS, key=lambda d: counts[d])
        return best if counts[best] else ","

    def _rows(self, text: str) -> list[_Row]:
        lines = text.splitlines()
        delimiter = self._delimiter(lines)
        rows = []
        try:
            reader = csv.reader(lines, delimiter=delimiter)
            for cells in reader:
                line_no = reader.line_num
                stripped = [c.strip() for c in cells]
                if any(stripped) and not stripped[0].startswith("#"):
                    rows.append(_Row(line_no, stripped))
                if len(rows) > MAX_ROWS:
                    raise _Bad(f"more than {MAX_ROWS} rows; refused")
        except csv.Error as exc:
            raise _Bad(f"line {reader.line_num}: not readable as CSV ({exc})") from None
        return [self._split_key_value(row) for row in rows]

    @staticmethod
    def _split_key_value(row: _Row) -> _Row:
        """``Key=Value`` / ``Key: Value`` in a single cell becomes two cells."""
        if len(row.filled) == 1 and len(row.cells[0]) > 0:
            match = re.match(r"^([^=:]{1,80}?)\s*[=:]\s*(.*)$", row.cells[0])
            if match:
                return _Row(row.line_no, [match.group(1).strip(), match.group(2).strip()])
        return row

    def _column_map(self, row: _Row) -> dict[str, int]:
        found: dict[str, int] = {}
        names = [_norm(c) for c in row.cells]
        for key in DEFAULT_COLUMNS:
            aliases = self._aliases(key, "columns")
            for index, name in enumerate(names):
                if name in aliases and index not in found.values():
                    found[key] = index
                    break
        return found

    def _is_step_header(self, row: _Row) -> bool:
        columns = self._column_map(row)
        return "name" in columns and ("value" in columns or "status" in columns)

    def _field_of(self, name: str) -> str | None:
        normalized = _norm(name)
        for key in DEFAULT_FIELDS:
            if normalized in self._aliases(key, "fields"):
                return key
        return None

    def _detect_layout(self, rows: list[_Row]) -> str:
        for row in rows:
            if self._is_step_header(row):
                return "steps"
            if len(row.filled) >= 3 and any(self._field_of(c) == "sn" for c in row.cells):
                return "units"
        return "steps"

    # --- steps layout -------------------------------------------------------

    def _steps_unit(self, rows: list[_Row]) -> dict[str, Any]:
        fields: dict[str, tuple[str, int]] = {}
        keys_given: dict[str, str] = {}  # the key each field came from, for messages
        misc: list[dict[str, str]] = []
        table_at = next((i for i, r in enumerate(rows) if self._is_step_header(r)), len(rows))
        for row in rows[:table_at]:
            if len(row.filled) > 2 or not row.cells[0]:
                raise _Bad(
                    f"line {row.line_no}: expected a 'Key,Value' line before the step table "
                    f"(a header row with step name and value/status columns), got "
                    f"{', '.join(row.filled)[:80]!r}"
                )
            key = row.cells[0]
            value = row.cells[1] if len(row.cells) > 1 else ""
            field_name = self._field_of(key)
            if field_name is None:
                if value:
                    misc.append({"description": key, "text": value})
            elif field_name in fields:
                first_key = keys_given[field_name]
                same = "" if first_key == key else f" as {first_key!r}"
                raise _Bad(
                    f"line {row.line_no}: {key!r} gives the report's {field_name}, already "
                    f"given on line {fields[field_name][1]}{same}; keep one of the two lines"
                )
            elif value:
                fields[field_name] = (value, row.line_no)
                keys_given[field_name] = key
        steps: list[Any] = []
        if table_at < len(rows):
            columns = self._column_map(rows[table_at])
            steps = self._step_rows(rows[table_at + 1 :], columns, len(rows[table_at].cells))
        report = self._header(fields, steps)
        if misc:
            report["miscInfos"] = misc
        report["_line"] = rows[0].line_no
        return report

    def _step_rows(self, rows: list[_Row], columns: dict[str, int], width: int) -> list[Any]:
        top: list[Any] = []
        group_name: str | None = None
        group_steps: list[Any] = []

        def close_group() -> None:
            if group_name is not None:
                top.append(
                    build_step(
                        {
                            "name": group_name,
                            "steps": group_steps,
                            "status": sequence_status(group_steps),
                        }
                    )
                )

        for row in rows:
            if len(row.cells) > width and any(row.cells[width:]):
                raise _Bad(f"line {row.line_no}: more cells than the header row has columns")
            cell = {key: (row.cells[i] if i < len(row.cells) else "") for key, i in columns.items()}
            step = self._step(cell, row.line_no)
            group = cell.get("group") or None
            if group != group_name:
                close_group()
                group_name, group_steps = group, []
            (group_steps if group is not None else top).append(step)
        close_group()
        return top

    def _number(self, text: str, line_no: int, what: str) -> float | None:
        if not text:
            return None
        try:
            return parse_float(text, decimal_comma=bool(self.settings.get("decimal_comma")))
        except ValueError as exc:
            raise _Bad(f"line {line_no}: {what}: {exc}") from None

    def _step(self, cell: Mapping[str, str], line_no: int) -> Any:
        name = cell.get("name", "")
        if not name:
            raise _Bad(f"line {line_no}: the step has no name")
        spec: dict[str, Any] = {"name": name}
        low = self._number(cell.get("low", ""), line_no, "low limit")
        high = self._number(cell.get("high", ""), line_no, "high limit")
        raw_value = cell.get("value", "")
        value: float | str | None = None
        if raw_value:
            try:
                value = parse_float(
                    raw_value, decimal_comma=bool(self.settings.get("decimal_comma"))
                )
            except ValueError:
                if low is not None or high is not None:
                    raise _Bad(
                        f"line {line_no}: value {raw_value!r} of {name!r} is not a number, "
                        "but the row has limits"
                    ) from None
                value = raw_value
        if cell.get("status"):
            try:
                spec["status"] = parse_step_status(cell["status"])
            except ValueError as exc:
                raise _Bad(f"line {line_no}: {exc}") from None
        if value is None:
            if "status" not in spec:
                raise _Bad(f"line {line_no}: step {name!r} has neither a value nor a status")
            spec["type"] = "passfail"
        else:
            spec["value"] = value
        comp = cell.get("comp", "").upper()
        if comp:
            if isinstance(value, float) and comp not in NUMERIC_OPS:
                raise _Bad(f"line {line_no}: comparison {comp!r} is not known")
            spec["comp"] = comp
        spec.update({k: v for k, v in (("low", low), ("high", high)) if v is not None})
        for key in ("unit", "text"):
            if cell.get(key):
                spec[key] = cell[key]
        time = self._number(cell.get("time", ""), line_no, "time")
        if time is not None:
            if time < 0:
                raise _Bad(f"line {line_no}: time is negative")
            spec["time"] = time
        try:
            return build_step(spec)
        except ValueError as exc:
            raise _Bad(f"line {line_no}: {exc}") from None

    # --- units layout -------------------------------------------------------

    def _units(self, rows: list[_Row]) -> list[dict[str, Any]]:
        header_at = next(
            (i for i, r in enumerate(rows) if any(self._field_of(c) == "sn" for c in r.cells)),
            None,
        )
        if header_at is None:
            raise _Bad("no header row with a serial-number column (set converters.csv.fields.sn)")
        shared: dict[str, tuple[str, int]] = {}
        for row in rows[:header_at]:
            field_name = self._field_of(row.cells[0])
            if field_name is not None and len(row.cells) > 1 and row.cells[1]:
                shared[field_name] = (row.cells[1], row.line_no)
        header = rows[header_at]
        identity: dict[int, str] = {}
        skip = {_norm(str(c)) for c in self.settings.get("skip_columns", [])}
        measures: list[tuple[int, str]] = []
        for index, cell in enumerate(header.cells):
            field_name = self._field_of(cell) if cell else None
            if field_name is not None and field_name not in identity.values():
                identity[index] = field_name
            elif cell and _norm(cell) not in skip:
                measures.append((index, cell))
        units = []
        for row in rows[header_at + 1 :]:
            if len(row.cells) > len(header.cells) and any(row.cells[len(header.cells) :]):
                raise _Bad(f"line {row.line_no}: more cells than the header row has columns")
            fields = dict(shared)
            for index, field_name in identity.items():
                if index < len(row.cells) and row.cells[index]:
                    fields[field_name] = (row.cells[index], row.line_no)
            if "sn" not in fields:
                raise _Bad(f"line {row.line_no}: the unit has no serial number")
            steps = []
            for index, column in measures:
                cell = row.cells[index] if index < len(row.cells) else ""
                if cell:
                    steps.append(self._measure(column, cell, row.line_no))
            report = self._header(fields, steps)
            report["_line"] = row.line_no
            units.append(report)
        if not units:
            raise _Bad(f"line {header.line_no}: the table has a header but no unit rows")
        return units

    def _measure(self, column: str, cell: str, line_no: int) -> Any:
        limits = self.settings.get("limits", {}).get(column, {})
        spec: dict[str, Any] = {"name": column}
        try:
            spec["value"] = parse_float(
                cell, decimal_comma=bool(self.settings.get("decimal_comma"))
            )
        except ValueError:
            status = step_status_or_none(cell)
            if status is not None and not limits:
                return build_step({"name": column, "type": "passfail", "status": status})
            if limits:
                raise _Bad(f"line {line_no}: {column}: {cell!r} is not a number") from None
            return build_step({"name": column, "value": cell})
        for key in ("low", "high", "unit"):
            if limits.get(key) is not None:
                spec[key] = limits[key]
        spec["comp"] = limits.get("comp") or derive_comp_op(spec.get("low"), spec.get("high"))
        try:
            return build_step(spec)
        except ValueError as exc:
            raise _Bad(f"line {line_no}: {exc}") from None

    # --- report header --------------------------------------------------------

    def _header(self, fields: dict[str, tuple[str, int]], steps: list[Any]) -> dict[str, Any]:
        values: dict[str, tuple[str, int]] = {
            key: (str(value), 0) for key, value in self.settings.get("defaults", {}).items()
        }
        values.update(fields)
        report: dict[str, Any] = {"type": "T"}
        uut: dict[str, Any] = {}

        def parsed(key: str, parse: Any) -> Any:
            text, line_no = values[key]
            try:
                return parse(text)
            except ValueError as exc:
                where = f"line {line_no}: {key}" if line_no else f"converters.csv.defaults.{key}"
                raise _Bad(f"{where}: {exc}") from None

        for key, target in (
            ("pn", "pn"),
            ("sn", "sn"),
            ("rev", "rev"),
            ("station", "machineName"),
            ("process_name", "processName"),
        ):
            if key in values:
                report[target] = values[key][0]
        for key in ("pn", "sn"):
            if key not in report:
                hint = f"set converters.csv.fields.{key} to its column name"
                if key == "pn":
                    hint += " or converters.csv.defaults.pn"
                raise _Bad(f"no {'part' if key == 'pn' else 'serial'} number found; {hint}")
        if "process_code" in values:
            report["processCode"] = parsed("process_code", parse_int)
        if "start" in values:
            report["start"] = parsed("start", self._datetime)
        for key, target in (
            ("operator", "user"),
            ("batch_sn", "batchSN"),
            ("fixture_id", "fixtureId"),
            ("comment", "comment"),
        ):
            if key in values:
                uut[target] = values[key][0]
        if "exec_time" in values:
            uut["execTime"] = parsed("exec_time", parse_float)
        report["uut"] = uut
        report["root"] = build_step(
            {"name": "MainSequence", "steps": steps, "status": sequence_status(steps)}
        )
        if "result" in values:
            report["result"] = parsed("result", parse_report_result)
        else:
            report["result"] = sequence_status(steps)
        return report

    def _datetime(self, text: str) -> datetime:
        date_format = self.settings.get("date_format")
        if date_format:
            try:
                return datetime.strptime(text.strip(), date_format)
            except ValueError:
                raise ValueError(f"{text!r} does not match date_format {date_format!r}") from None
        return parse_datetime(text)
