"""Pieces every built-in converter shares: validation, XML loading, header checks."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pywats_client.converters._results import step_depth
from pywats_client.converters._steps import MAX_STEP_DEPTH
from pywats_client.converters._text import file_mtime
from pywats_client.converters._xml import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_ELEMENTS,
    XmlRefused,
    parse_xml,
)
from pywats_client.converters.base import BaseConverter
from pywats_client.core._validation import describe_validation_error
from pywats_client.models import UURReport, UUTReport, parse_report

__all__ = [
    "XML_MAX_SIZE",
    "XmlConverter",
    "build_reports",
    "check_settings",
    "file_mtime",
    "load_xml",
    "unique_ids",
    "validated",
]

#: Default size limit of XML files (``converters.<name>.max_size`` overrides it).
XML_MAX_SIZE = 16 * 1024 * 1024


def validated(
    converter: BaseConverter, path: Path, data: dict[str, Any], where: str = ""
) -> UUTReport | UURReport:
    """``data`` as a report model, or a ``ConversionError`` naming the field at fault."""
    prefix = f"{where}: " if where else ""
    if step_depth(data.get("root")) > MAX_STEP_DEPTH:
        raise converter.error(f"{prefix}steps are nested more than {MAX_STEP_DEPTH} deep", path)
    try:
        return parse_report(data)
    except ValidationError as exc:
        key, problem = describe_validation_error(exc)
        raise converter.error(f"{prefix}{key}: {problem}", path) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise converter.error(f"{prefix}{exc}", path) from None


def unique_ids(
    converter: BaseConverter, path: Path, reports: list[UUTReport | UURReport]
) -> list[UUTReport | UURReport]:
    """``reports``, or a ``ConversionError`` when two of them carry the same id.

    The server keeps one report per id, so a file repeating an id would lose
    a unit silently on upload.
    """
    seen: dict[str, int] = {}
    for index, report in enumerate(reports):
        if "id" not in report.model_fields_set:
            continue
        key = str(report.id)
        if key in seen:
            raise converter.error(f"reports {seen[key]} and {index} have the same id {key}", path)
        seen[key] = index
    return reports


def build_reports(
    converter: BaseConverter,
    path: Path,
    elements: Sequence[ET.Element],
    label: str,
    build: Callable[[ET.Element], dict[str, Any]],
    invalid: type[Exception],
) -> list[UUTReport | UURReport]:
    """One validated report per XML element (several units in one file).

    ``build`` turns an element into WSJF-shaped data and raises ``invalid`` with
    the reason; errors name the element (``<label> <index>``) when there are
    several, and a report without a start time gets the file's mtime.
    """
    reports = []
    for index, element in enumerate(elements):
        where = f"{label} {index}" if len(elements) > 1 else ""
        try:
            data = build(element)
        except invalid as exc:
            raise converter.error(f"{where + ': ' if where else ''}{exc}", path) from None
        data.setdefault("start", file_mtime(path))
        reports.append(validated(converter, path, data, where))
    return unique_ids(converter, path, reports)


def check_settings(name: str, settings: Any, allowed: dict[str, type | tuple[type, ...]]) -> None:
    """Refuse unknown keys and wrong types in ``converters.<name>`` (``ValueError``)."""
    framework = {"enabled", "patterns", "priority", "max_size"}
    for key, value in settings.items():
        if key in framework or key.startswith("//"):
            continue
        if key not in allowed:
            known = ", ".join(sorted({*allowed, *framework}))
            raise ValueError(f"converters.{name}.{key}: unknown setting (known: {known})")
        expected = allowed[key]
        kinds = expected if isinstance(expected, tuple) else (expected,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            wanted = " or ".join(k.__name__ for k in kinds)
            raise ValueError(
                f"converters.{name}.{key}: must be {wanted}, got {type(value).__name__}"
            )
        if key.startswith("max_") and isinstance(value, int) and value < 1:
            raise ValueError(f"converters.{name}.{key}: must be at least 1")


class XmlConverter(BaseConverter):
    """Base of the XML built-ins: a 16 MiB default size limit and element bounds."""

    max_size = XML_MAX_SIZE
    extra_settings: dict[str, type | tuple[type, ...]] = {}

    def configure(self, settings: Any) -> None:
        check_settings(
            self.name,
            settings,
            {"max_elements": int, "max_depth": int, **self.extra_settings},
        )
        super().configure(settings)


def _setting_int(converter: BaseConverter, key: str, default: int) -> int:
    value = converter.settings.get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def load_xml(converter: BaseConverter, path: Path) -> ET.Element:
    """The file's XML root, parsed safely within the converter's limits."""
    data = converter.read_bytes(path)
    try:
        return parse_xml(
            data,
            max_elements=_setting_int(converter, "max_elements", DEFAULT_MAX_ELEMENTS),
            max_depth=_setting_int(converter, "max_depth", DEFAULT_MAX_DEPTH),
        )
    except XmlRefused as exc:
        raise converter.error(str(exc), path) from None
