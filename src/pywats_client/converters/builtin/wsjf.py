"""WATS standard JSON (WSJF): validated passthrough that keeps the report's id.

A tester that already writes WSJF needs no conversion, only a check that the
server will take it: the file is validated with the report model, unknown
fields are kept, and the id it carries is kept (one is derived when absent).
A JSON list of report objects is several units in one file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pywats_client.converters.base import BaseConverter
from pywats_client.converters.builtin._common import check_settings, unique_ids, validated
from pywats_client.models import UURReport, UUTReport

__all__ = ["WsjfConverter"]

_LOOKS_WSJF = re.compile(rb'"(pn|sn|root|uut|uur)"\s*:')


class WsjfConverter(BaseConverter):
    """WATS standard JSON format (WSJF): validated, passed through with its id."""

    name = "wsjf"
    description = "WATS standard JSON (WSJF) reports, validated and passed through"
    patterns = ("*.json", "*.wsjf")

    def configure(self, settings: Any) -> None:
        check_settings(self.name, settings, {})
        super().configure(settings)

    def can_convert(self, file_path: Path) -> float:
        head = self.peek(file_path).lstrip(b"\xef\xbb\xbf \t\r\n")
        if not head.startswith((b"{", b"[")):
            return 0.0
        return 0.9 if _LOOKS_WSJF.search(head) else 0.4

    def convert(self, file_path: Path) -> list[UUTReport | UURReport]:
        text = self.read_text(file_path)
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise self.error(
                f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file_path
            ) from None
        except RecursionError:
            raise self.error("JSON is nested too deeply", file_path) from None
        except ValueError:  # an integer of more than sys.get_int_max_str_digits() digits
            raise self.error(
                "holds a number too long to read (thousands of digits)", file_path
            ) from None
        items = data if isinstance(data, list) else [data]
        if not items:
            raise self.error("holds an empty JSON list: no report", file_path)
        reports = []
        for index, item in enumerate(items):
            where = f"report {index}" if isinstance(data, list) else ""
            if not isinstance(item, dict):
                raise self.error(
                    f"{where + ': ' if where else ''}a WSJF report is a JSON object ({{...}}), "
                    f"not {type(item).__name__}",
                    file_path,
                )
            reports.append(validated(self, file_path, item, where))
        return unique_ids(self, file_path, reports)
