"""``BaseConverter.create_step``: a typed WSJF step from a small, forgiving dict.

A converter author thinks "a measurement with limits", "a pass/fail check",
"a string compare", "a group of steps" - not WSJF step types. This module maps
such a dict to the right step model:

* ``value`` is a number -> numeric limit step (``ET_NLT``), limits ``low``/``high``,
  comparison derived from which limits are given unless ``comp`` says otherwise;
* ``measurements`` (a list of such dicts) -> multiple numeric step (``ET_MNLT``);
* ``value`` is a string, or ``limit`` is given -> string value step (``ET_SVT``);
* ``passed`` (bool) alone, or ``value`` is a bool -> pass/fail step (``ET_PFT``);
* ``steps`` (a list) -> sequence call with those children;
* anything else -> an ``Action`` step with a status.

A dict that already names a WSJF ``stepType`` is validated as WSJF as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from pydantic import TypeAdapter

from pywats_client.converters._values import parse_float, parse_step_status
from pywats_client.models import (
    AnyStep,
    GenericStep,
    NumericLimitStep,
    PassFailStep,
    SequenceCallStep,
    Step,
    StringValueStep,
)
from pywats_client.models.steps import CompOp, StringCompOp, worst_status

__all__ = [
    "MAX_STEP_DEPTH",
    "NUMERIC_OPS",
    "STRING_OPS",
    "build_step",
    "derive_comp_op",
    "sequence_status",
]

#: Deepest sequence nesting accepted; deeper trees are refused, not recursed into.
MAX_STEP_DEPTH = 64
#: Comparison operators of numeric and string steps, taken from the report model so
#: the converters never disagree with what validation accepts.
NUMERIC_OPS: frozenset[str] = frozenset(get_args(CompOp))
STRING_OPS: frozenset[str] = frozenset(get_args(StringCompOp))

_STEP_ADAPTER: TypeAdapter[AnyStep] = TypeAdapter(AnyStep)

_ALIASES = {
    "low_limit": "low",
    "lowlimit": "low",
    "min": "low",
    "high_limit": "high",
    "highlimit": "high",
    "max": "high",
    "comp_op": "comp",
    "compop": "comp",
    "comparison": "comp",
    "units": "unit",
    "tot_time": "time",
    "tottime": "time",
    "duration": "time",
    "report_text": "text",
    "reporttext": "text",
    "message": "text",
    "errorcode": "error_code",
    "errormessage": "error_message",
    "kind": "type",
    "children": "steps",
}
_KNOWN = {
    "name",
    "type",
    "value",
    "unit",
    "low",
    "high",
    "comp",
    "limit",
    "passed",
    "status",
    "time",
    "text",
    "group",
    "steps",
    "measurements",
    "error_code",
    "error_message",
    "step_type",
}
_GROUPS = {"s": "S", "setup": "S", "m": "M", "main": "M", "c": "C", "cleanup": "C"}
_KINDS = {
    "numeric": "numeric",
    "numericlimit": "numeric",
    "numericlimittest": "numeric",
    "passfail": "passfail",
    "passfailtest": "passfail",
    "boolean": "passfail",
    "string": "string",
    "stringvalue": "string",
    "stringvaluetest": "string",
    "sequence": "sequence",
    "sequencecall": "sequence",
    "group": "sequence",
    "action": "action",
}


def derive_comp_op(low: float | None, high: float | None) -> str:
    """The comparison a measurement with these limits most likely means."""
    if low is not None and high is not None:
        return "GELE"
    if low is not None:
        return "GE"
    if high is not None:
        return "LE"
    return "LOG"


def sequence_status(children: list[Any]) -> str:
    """A sequence's status from its children (the models' one rule)."""
    return worst_status(getattr(c, "status", None) for c in children)


def _normalized(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        if not isinstance(raw_key, str):
            raise ValueError(f"step keys must be strings, got {raw_key!r}")
        key = raw_key.strip().lower().replace(" ", "_").replace("-", "_")
        key = _ALIASES.get(key, key)
        if key not in _KNOWN:
            known = ", ".join(sorted(_KNOWN))
            raise ValueError(f"unknown step key {raw_key!r} (known keys: {known})")
        out[key] = value
    return out


def _number(value: Any, what: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return parse_float(value)
    raise ValueError(f"{what} must be a number, got {value!r}")


def _measurement(data: Mapping[str, Any], *, name: str | None) -> dict[str, Any]:
    low = _number(data.get("low"), "low limit")
    high = _number(data.get("high"), "high limit")
    comp = str(data.get("comp") or "").strip().upper() or derive_comp_op(low, high)
    if comp in {"EQ", "NE", "LT", "LE", "GT", "GE"} and low is None and high is not None:
        low, high = high, None  # one-limit comparisons keep their limit in lowLimit
    out: dict[str, Any] = {
        "value": _number(data.get("value"), "value"),
        "compOp": comp,
        "lowLimit": low,
        "highLimit": high,
    }
    if name is not None:
        out["name"] = name
    if data.get("unit") not in (None, ""):
        out["unit"] = str(data["unit"])
    status = _status_of(data)
    if status is not None:
        out["status"] = status
    return {k: v for k, v in out.items() if v is not None}


def _status_of(data: Mapping[str, Any]) -> str | None:
    if data.get("status") not in (None, ""):
        return parse_step_status(str(data["status"]))
    passed = data.get("passed")
    if passed is None:
        return None
    if not isinstance(passed, bool):
        raise ValueError(f"'passed' must be true or false, got {passed!r}")
    return "P" if passed else "F"


def _kind(data: Mapping[str, Any]) -> str:
    if data.get("type") not in (None, ""):
        word = str(data["type"]).replace("_", "").replace(" ", "").lower()
        if word not in _KINDS:
            raise ValueError(
                f"unknown step type {data['type']!r} (use numeric, passfail, string, "
                "sequence or action)"
            )
        return _KINDS[word]
    value = data.get("value")
    if "steps" in data:
        return "sequence"
    if "measurements" in data:
        return "numeric"
    if isinstance(value, bool):
        return "passfail"
    if isinstance(value, (int, float)):
        return "numeric"
    if isinstance(value, str) or "limit" in data:
        return "string"
    if "passed" in data:
        return "passfail"
    return "action"


def build_step(data: Any, depth: int = 0) -> Step:
    """A validated step model from ``data`` (see the module docstring)."""
    if isinstance(data, Step):
        return data
    if not isinstance(data, Mapping):
        raise ValueError(f"a step must be a dict, got {type(data).__name__}")
    if depth > MAX_STEP_DEPTH:
        raise ValueError(f"steps are nested more than {MAX_STEP_DEPTH} levels deep")
    if "stepType" in data:
        return _STEP_ADAPTER.validate_python(dict(data))
    spec = _normalized(data)
    name = str(spec.get("name") or "").strip()
    if not name:
        raise ValueError("every step needs a 'name'")
    try:
        return _build(spec, name, depth)
    except ValueError as exc:
        raise ValueError(f"step {name!r}: {exc}") from None


def _build(spec: dict[str, Any], name: str, depth: int) -> Step:
    common: dict[str, Any] = {"name": name}
    if spec.get("group") not in (None, ""):
        group = _GROUPS.get(str(spec["group"]).strip().lower())
        if group is None:
            raise ValueError(f"group {spec['group']!r} is not setup, main or cleanup")
        common["group"] = group
    time = _number(spec.get("time"), "time")
    if time is not None:
        common["tot_time"] = time
    if spec.get("text") not in (None, ""):
        common["report_text"] = str(spec["text"])
    if spec.get("error_code") not in (None, ""):
        common["error_code"] = int(_number(spec["error_code"], "error_code") or 0)
    if spec.get("error_message") not in (None, ""):
        common["error_message"] = str(spec["error_message"])
    status = _status_of(spec)
    if status is not None:
        common["status"] = status

    kind = _kind(spec)
    if kind == "sequence":
        raw_children = spec.get("steps") or []
        if not isinstance(raw_children, list):
            raise ValueError("'steps' must be a list of steps")
        children = [build_step(item, depth + 1) for item in raw_children]
        common.setdefault("status", sequence_status(children))
        return SequenceCallStep(**common, steps=children)
    if kind == "numeric":
        raw = spec.get("measurements")
        if raw is not None:
            if not isinstance(raw, list) or not raw:
                raise ValueError("'measurements' must be a non-empty list")
            meas = []
            for index, item in enumerate(raw):
                if not isinstance(item, Mapping):
                    raise ValueError(f"measurement {index} must be a dict")
                item_spec = _normalized(item)
                meas.append(_measurement(item_spec, name=str(item_spec.get("name") or index)))
            return NumericLimitStep(**common, numeric_meas=meas)
        if _number(spec.get("value"), "value") is None:
            raise ValueError("a numeric step needs a 'value'")
        measurement = _measurement(spec, name=None)
        measurement.pop("status", None)
        if "status" in common:
            measurement["status"] = common["status"]
        return NumericLimitStep(**common, numeric_meas=[measurement])
    if kind == "string":
        value = spec.get("value")
        limit = spec.get("limit")
        comp = str(spec.get("comp") or "").strip().upper() or (
            "CASESENSIT" if limit is not None else "LOG"
        )
        string_meas: dict[str, Any] = {"value": None if value is None else str(value)}
        string_meas["compOp"] = comp
        if limit is not None:
            string_meas["limit"] = str(limit)
        if "status" in common:
            string_meas["status"] = common["status"]
        return StringValueStep(**common, string_meas=[string_meas])
    if kind == "passfail":
        value = spec.get("value")
        if "status" not in common:
            if not isinstance(value, bool):
                raise ValueError("a pass/fail step needs 'passed' (true/false) or a 'status'")
            common["status"] = "P" if value else "F"
        return PassFailStep(**common, boolean_meas=[{"status": common["status"]}])
    common.setdefault("status", "D")
    return GenericStep(**common, step_type=str(spec.get("step_type") or "Action"))
