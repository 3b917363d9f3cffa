"""Turn pydantic validation errors into one operator-readable line."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from pywats_client.errors import ConfigError

__all__ = ["config_error_from_validation", "describe_validation_error"]


def _key(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``X``, ``list[X]``, ``X | None``...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Known keys at the level of ``loc`` (for 'unknown key' errors)."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue  # list index: same model
        field = current.model_fields.get(part) if current else None
        current = _model_in(field.annotation) if field else None
        if current is None:
            return []
    return sorted(current.model_fields) if current else []


def _problem(error: ErrorDetails, model: type[BaseModel] | None, *, show_value: bool = True) -> str:
    kind = error["type"]
    loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc) if model else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1) if loc else []
        if close:
            return f"unknown key; did you mean {close[0]!r}? Fix its spelling or remove it"
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"unknown key{hint}. Remove it or fix its spelling"
    if kind == "missing":
        return "is required; add it"
    value = error.get("input")
    shown = "" if isinstance(value, (dict, list)) or not show_value else f" (got {value!r})"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return f"{message}{shown}"


#: Problems spelled out in one message; beyond that only a count.
MAX_LISTED = 5


def describe_validation_error(
    exc: ValidationError, model: type[BaseModel] | None = None, prefix: tuple[str, ...] = ()
) -> tuple[str, str]:
    """(key, problem) of the first error; the problem text goes on with the others.

    A file with three typos then takes one fix-and-retry, not three.
    """
    errors = exc.errors(include_url=False)
    described = [_described(error, model, prefix) for error in errors[:MAX_LISTED]]
    key, problem = described[0]
    for other_key, other_problem in described[1:]:
        problem += f". Also {other_key}: {other_problem}"
    unlisted = len(errors) - len(described)
    if unlisted:
        problem += f" (and {unlisted} more problem{'s' if unlisted > 1 else ''})"
    return key, problem


def _described(
    error: ErrorDetails, model: type[BaseModel] | None, prefix: tuple[str, ...]
) -> tuple[str, str]:
    loc = tuple(error["loc"])
    # a proxy URL may carry user:password: its problem is told without the value
    problem = _problem(error, model, show_value="proxy" not in loc)
    if "api_token" in loc:
        problem = "invalid value (not shown: it is a secret)"
    return _key((*prefix, *loc)) or "<top level>", problem


def config_error_from_validation(
    exc: ValidationError,
    *,
    file: Path | None,
    model: type[BaseModel] | None = None,
    prefix: tuple[str, ...] = (),
    error_cls: type[ConfigError] = ConfigError,
) -> ConfigError:
    key, problem = describe_validation_error(exc, model, prefix)
    return error_cls(problem, file=file, key=key)
