"""From whatever a converter returned to validated WSJF dicts with stable ids.

This is where "nothing doubled" starts: a report without an id gets one
derived from the instance, the source file's content hash and the report's
position in the file, so converting the same file again (after a crash, or by
another run of the same instance) gives the same ids, and the server replaces
a resubmitted id instead of storing a second copy.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from pywats_client.converters._steps import MAX_STEP_DEPTH
from pywats_client.core._validation import describe_validation_error
from pywats_client.models import UURReport, UUTReport, parse_report
from pywats_client.models.report import dump_checked

__all__ = [
    "REPORT_ID_NAMESPACE",
    "OutputError",
    "ReportDefaults",
    "normalize_output",
    "report_id",
    "step_depth",
]

#: Fixed namespace of derived report ids. Never change it: ids of reports
#: converted before and after the change would differ, and resubmissions of
#: the same file would create duplicates on the server.
REPORT_ID_NAMESPACE = uuid.UUID("6f1c2d0e-5a8b-4c3e-9f7a-1d2b3c4e5f60")


def report_id(instance_name: str, source_sha256: str, index: int) -> uuid.UUID:
    """The id of report ``index`` of a source file with this content hash."""
    return uuid.uuid5(REPORT_ID_NAMESPACE, f"{instance_name}\n{source_sha256}\n{index}")


@dataclass(frozen=True)
class ReportDefaults:
    """Station identity filled into reports that do not carry their own."""

    instance_name: str
    machine_name: str | None = None
    location: str | None = None
    purpose: str | None = None


class OutputError(ValueError):
    """The converter's output is not something we can send (message says why)."""


_RETURN_HINT = (
    "return a UUTReport/UURReport from pywats_client.models, a WSJF dict, or a list of them"
)


def _as_items(output: Any) -> list[Any]:
    if output is None:
        raise OutputError(f"returned None: missing `return report`? ({_RETURN_HINT})")
    if isinstance(output, (list, tuple)):
        if not output:
            raise OutputError("returned an empty list: no report")
        return list(output)
    return [output]


def _describe(value: Any) -> str:
    return type(value).__module__ + "." + type(value).__qualname__


def step_depth(node: Any) -> int:
    """Deepest nesting of ``steps`` lists under a WSJF step dict (iterative)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(node, 0)]
    while pending:
        current, depth = pending.pop()
        deepest = max(deepest, depth)
        if depth > MAX_STEP_DEPTH:
            return depth
        children = current.get("steps") if isinstance(current, Mapping) else None
        if isinstance(children, list):
            pending.extend((child, depth + 1) for child in children)
    return deepest


def _to_dict(item: Any, index: int, trusted: bool) -> tuple[dict[str, Any], bool, bool]:
    """(WSJF dict, whether the converter chose the id, whether the dict is validated)."""
    if isinstance(item, (UUTReport, UURReport)):
        has_id = "id" in item.model_fields_set
        try:
            data, checked = dump_checked(item)  # no serializer warnings: checked below
            return data, has_id, trusted and checked
        except ValidationError as exc:
            key, problem = describe_validation_error(exc)
            raise OutputError(f"report {index}: {key}: {problem}") from None
    if isinstance(item, Mapping):
        data = dict(item)
        has_id = data.get("id") not in (None, "")
        if not has_id:
            data.pop("id", None)
        return data, has_id, False
    if item is None:
        raise OutputError(f"returned None as report {index} of its list; {_RETURN_HINT}")
    raise OutputError(f"returned {_describe(item)}; {_RETURN_HINT}")


def _validated(data: dict[str, Any], index: int) -> dict[str, Any]:
    if step_depth(data.get("root")) > MAX_STEP_DEPTH:
        raise OutputError(f"report {index}: steps nested more than {MAX_STEP_DEPTH} deep")
    try:
        return parse_report(data).to_wsjf()
    except ValidationError as exc:
        key, problem = describe_validation_error(exc)
        raise OutputError(f"report {index} is not valid WSJF: {key}: {problem}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise OutputError(f"report {index} is not valid WSJF: {exc}") from None


def normalize_output(
    output: Any, *, sha256: str, defaults: ReportDefaults, trusted: bool = False
) -> list[dict[str, Any]]:
    """Validated WSJF dicts for ``output``; :class:`OutputError` saying what is wrong.

    ``trusted``: the output of a built-in converter, whose models are built by
    validating WSJF data and not touched after; validating them again would
    double the time and memory of a big report. A plugin's model may hold what
    pydantic never checked (``model_construct``, a list emptied after it was
    built), so it is validated again.
    """
    reports: list[dict[str, Any]] = []
    seen_ids: dict[str, int] = {}
    for index, item in enumerate(_as_items(output)):
        data, has_id, validated = _to_dict(item, index, trusted)
        if not has_id:
            data["id"] = str(report_id(defaults.instance_name, sha256, index))
        for key, value in (
            ("machineName", defaults.machine_name),
            ("location", defaults.location),
            ("purpose", defaults.purpose),
        ):
            if value and data.get(key) in (None, ""):
                data[key] = value
        # The defaults added above are station settings, checked with the config; a
        # built-in checked the nesting before it validated (converters/builtin/_common).
        wsjf = data if validated else _validated(data, index)
        report_key = str(wsjf["id"])
        if report_key in seen_ids:
            raise OutputError(
                f"reports {seen_ids[report_key]} and {index} share the id {report_key}; "
                "every report needs its own id (or leave it out to get a derived one)"
            )
        seen_ids[report_key] = index
        reports.append(wsjf)
    return reports
