"""The reference tables of docs/configuration.md, generated from the pydantic models.

The models are the truth: every key, type, default and description in the
tables comes from ``ClientConfig``, ``RetryPolicy``, ``SupervisorSettings`` and
``InstanceEntry``. After changing a model, rewrite the tables with::

    python -m tests._config_docs

``tests/test_docs.py`` fails while a table is stale, a key is missing from the
page, or the page documents a key the models no longer have.
"""

from __future__ import annotations

import json
import re
import sys
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, MinLen
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from pywats_client.core import ClientConfig, InstanceEntry, RetryPolicy, SupervisorSettings

__all__ = [
    "BLOCKS",
    "CONFIG_DOC",
    "documented_keys",
    "generated_blocks",
    "main",
    "model_keys",
    "render_block",
    "update_doc",
]

CONFIG_DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
REGENERATE = "python -m tests._config_docs"

#: ClientConfig keys by topic, in the order the page explains them. A model key
#: missing here still gets documented, under "Other keys".
CLIENT_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Station and server (the seed's keys)",
        (
            "instance_name",
            "service_address",
            "api_token",
            "converter_path",
            "queue_path",
            "watch_paths",
            "auto_submit",
            "retry_failed",
        ),
    ),
    (
        "Picking up files",
        (
            "file_patterns",
            "ignore_patterns",
            "recursive",
            "ready_after",
            "ready_marker",
            "rescan_interval",
            "max_file_size",
            "max_queue_size",
        ),
    ),
    ("After conversion: Done and Error folders", ("post_action", "done_path", "error_path")),
    ("Converters", ("converters", "converter_timeout", "text_encoding")),
    (
        "Uploading",
        (
            "max_concurrent_uploads",
            "retry",
            "request_timeout",
            "ping_interval",
            "archive_sent",
            "upload_helper",
        ),
    ),
    ("Network", ("proxy", "ca_bundle", "verify_tls", "client_cert", "client_key")),
    ("Station identity on reports", ("station_name", "location", "purpose")),
    ("Logging", ("log_path", "log_level")),
)


@dataclass(frozen=True)
class Block:
    """One generated region of the page: a model's keys, with a prefix (``retry.``)."""

    name: str
    model: type[BaseModel]
    prefix: str = ""
    grouped: bool = False


BLOCKS: tuple[Block, ...] = (
    Block("client-config", ClientConfig, grouped=True),
    Block("retry-policy", RetryPolicy, prefix="retry."),
    Block("supervisor", SupervisorSettings),
    Block("instance", InstanceEntry),
)

_BEGIN = "<!-- BEGIN GENERATED {name}: " + REGENERATE + " -->"
_END = "<!-- END GENERATED {name} -->"
_ROW_KEY = re.compile(r"^\| `([^`]+)` \|", re.M)
_MIB = 1024 * 1024


# --- rendering ----------------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        inner = " or ".join(_type_name(a) for a in args)
        return f"{inner} or null" if len(args) < len(get_args(annotation)) else inner
    if origin is Literal:
        return "one of " + ", ".join(f"`{json.dumps(a)}`" for a in get_args(annotation))
    if origin is list:
        (item,) = get_args(annotation)
        return f"list of {_type_name(item)}s"
    if origin is dict:
        return "object"
    names = {
        str: "string",
        SecretStr: "string (secret)",
        bool: "boolean",
        int: "integer",
        float: "number",
        Path: "path",
    }
    if annotation in names:
        return names[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    raise TypeError(f"no documentation wording for the type {annotation!r}; add it to _type_name")


def _constraints(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        if isinstance(item, Gt):
            parts.append(f"> {item.gt}")
        elif isinstance(item, Ge):
            parts.append(f">= {item.ge}")
        elif isinstance(item, Le):
            parts.append(f"<= {item.le}")
        elif isinstance(item, MinLen) and item.min_length == 1:
            parts.append("not empty")
    return ", ".join(parts)


def _default(field: FieldInfo, key: str) -> str:
    if field.is_required():
        return "*required*"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return f"see `{key}.*`"
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, Path):
        value = value.as_posix()
    text = f"`{json.dumps(value)}`"
    if isinstance(value, int) and not isinstance(value, bool) and value >= _MIB:
        text += f" ({value / _MIB:g} MiB)"
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _prose(text: str) -> str:
    """A description as Markdown text: no stray HTML tags or emphasis."""
    for char, escaped in (("<", "&lt;"), (">", "&gt;"), ("*", "\\*")):
        text = text.replace(char, escaped)
    return _cell(text)


def _table(model: type[BaseModel], keys: Iterable[str], prefix: str) -> list[str]:
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for name in keys:
        field = model.model_fields[name]
        key = f"{prefix}{name}"
        kind = _type_name(field.annotation)
        limits = _constraints(field)
        if limits:
            kind = f"{kind}, {limits}"
        lines.append(
            f"| `{key}` | {_cell(kind)} | {_cell(_default(field, key))} | "
            f"{_prose(field.description or '')} |"
        )
    return lines


def _groups(model: type[BaseModel]) -> list[tuple[str, tuple[str, ...]]]:
    fields = model.model_fields
    grouped: set[str] = set()
    out: list[tuple[str, tuple[str, ...]]] = []
    for title, keys in CLIENT_GROUPS:
        gone = [k for k in keys if k not in fields]
        if gone:
            raise KeyError(
                f"tests/_config_docs.py CLIENT_GROUPS lists {gone}, which "
                f"{model.__name__} no longer has; remove them, then run '{REGENERATE}'"
            )
        grouped.update(keys)
        out.append((title, keys))
    rest = tuple(k for k in fields if k not in grouped)
    if rest:
        out.append(("Other keys", rest))
    return out


def render_block(block: Block) -> str:
    """The Markdown between the BEGIN/END markers of ``block`` (markers excluded)."""
    lines: list[str] = []
    if block.grouped:
        for title, keys in _groups(block.model):
            lines += [f"#### {title}", "", *_table(block.model, keys, block.prefix), ""]
        lines.pop()
    else:
        lines = _table(block.model, block.model.model_fields, block.prefix)
    return "\n".join(lines)


def model_keys(block: Block) -> set[str]:
    return {f"{block.prefix}{name}" for name in block.model.model_fields}


# --- the page -------------------------------------------------------------------------


def _region(name: str) -> re.Pattern[str]:
    begin = re.escape(_BEGIN.format(name=name))
    end = re.escape(_END.format(name=name))
    return re.compile(rf"{begin}\n(?:(.*?)\n)?{end}", re.S)


def generated_blocks(text: str) -> dict[str, str | None]:
    """The current content of each generated region of ``text`` (None: markers missing)."""
    out: dict[str, str | None] = {}
    for block in BLOCKS:
        match = _region(block.name).search(text)
        out[block.name] = (match.group(1) or "") if match else None
    return out


def documented_keys(text: str) -> set[str]:
    """Every key in the first column of a table in ``text`` (``| `key` |`` rows)."""
    return set(_ROW_KEY.findall(text))


def update_doc(path: Path = CONFIG_DOC) -> list[str]:
    """Rewrite the generated regions of ``path``; returns the names of those changed."""
    text = path.read_text(encoding="utf-8")
    changed = []
    for block in BLOCKS:
        start, end = _BEGIN.format(name=block.name), _END.format(name=block.name)
        match = _region(block.name).search(text)
        if match is None:
            raise SystemExit(f"{path}: no region '{block.name}'; add the lines\n{start}\n{end}")
        replacement = f"{start}\n{render_block(block)}\n{end}"
        replaced = text[: match.start()] + replacement + text[match.end() :]
        if replaced != text:
            changed.append(block.name)
            text = replaced
    path.write_text(text, encoding="utf-8", newline="\n")
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    changed = update_doc()
    sys.stdout.write(
        f"{CONFIG_DOC}: " + (f"updated {', '.join(changed)}" if changed else "up to date") + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
