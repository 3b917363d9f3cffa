"""Shared pieces of the converter tests: sample paths, the fuzz oracle, input strategies.

The fuzz oracle is the property every built-in parser must have: whatever
bytes it is given, it either returns something the manager turns into valid
WSJF, or raises ``ConversionError`` naming itself. Any other exception (or
output the manager refuses) is a bug the test reports with the input.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pywats_client.converters import BaseConverter
from pywats_client.converters._results import OutputError, ReportDefaults, normalize_output
from pywats_client.errors import ConversionError

DATA = Path(__file__).resolve().parent.parent / "data" / "converters"

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def sample(relative: str) -> Path:
    return DATA / relative


def check_never_raises_other(converter: BaseConverter, path: Path, data: bytes) -> None:
    """The fuzz oracle (see module docstring)."""
    path.write_bytes(data)
    converter.can_convert(path)  # must not raise either
    try:
        output = converter.convert(path)
    except ConversionError as exc:
        assert exc.converter == converter.name, f"error does not name the converter: {exc}"
        assert str(exc), "empty error message"
        return
    try:
        normalize_output(output, sha256="0" * 64, defaults=ReportDefaults("fuzz"))
    except OutputError as exc:  # pragma: no cover - only reached on a bug
        raise AssertionError(f"{converter.name} returned output the manager refuses: {exc}")


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with a few random edits: cuts, insertions, duplicated or swapped lines."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["cut", "insert", "dup_line", "swap_lines", "truncate"]))
        if op == "truncate" and data:
            del data[draw(st.integers(0, len(data) - 1)) :]
        elif op == "cut" and data:
            start = draw(st.integers(0, len(data) - 1))
            del data[start : start + draw(st.integers(1, 40))]
        elif op == "insert":
            at = draw(st.integers(0, len(data)))
            piece = draw(
                st.one_of(
                    st.binary(max_size=12),
                    st.sampled_from(
                        [
                            b"\t",
                            b"\n",
                            b",",
                            b";",
                            b"=",
                            b"<",
                            b">",
                            b'"',
                            b"&",
                            b"NaN",
                            b"-1",
                            b"1e999",
                            b"\xff\xfe",
                            b"\x00",
                            b"]]>",
                            b"{",
                            b"}",
                        ]
                    ),
                )
            )
            data[at:at] = piece
        elif op in ("dup_line", "swap_lines"):
            lines = bytes(data).split(b"\n")
            if len(lines) > 1:
                i = draw(st.integers(0, len(lines) - 1))
                j = draw(st.integers(0, len(lines) - 1))
                if op == "dup_line":
                    lines.insert(j, lines[i])
                else:
                    lines[i], lines[j] = lines[j], lines[i]
                data = bytearray(b"\n".join(lines))
    return bytes(data)


def values() -> st.SearchStrategy[str]:
    """Cell/attribute values a parser meets: numbers, words, statuses, dates, junk."""
    return st.one_of(
        st.sampled_from(
            [
                "",
                "0",
                "1",
                "-1",
                "5.02",
                "4,9",
                "1e308",
                "1e999",
                "NaN",
                "inf",
                "-inf",
                "abc",
                "Passed",
                "Failed",
                "Skipped",
                "Done",
                "Error",
                "Terminated",
                "P",
                "F",
                "PASS",
                "FAIL",
                "true",
                "false",
                "GELE",
                "LT",
                "EQT",
                "CASESENSIT",
                "LOG",
                "V",
                "°C",
                "2026-03-01T09:15:00+01:00",
                "2026-13-45T99:99",
                "0001-01-01T00:00:00+14:00",
                "9999-12-31T23:59:59-12:00",
                "  ",
                "SN-1",
                "PCBA-100",
            ]
        ),
        st.text(max_size=12),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(-(10**20), 10**20).map(str),
    )


def xml_documents(
    tags: list[str], attributes: list[str], namespace: str = ""
) -> st.SearchStrategy[bytes]:
    """Well-formed XML built from the format's own vocabulary, so the converter's
    logic (not only the XML parser) meets odd but plausible input."""
    prefix = f"{{{namespace}}}" if namespace else ""

    def element(children: st.SearchStrategy[list[ET.Element]]) -> st.SearchStrategy[ET.Element]:
        @st.composite
        def build(draw: st.DrawFn) -> ET.Element:
            node = ET.Element(prefix + draw(st.sampled_from(tags)))
            for name in draw(st.lists(st.sampled_from(attributes), max_size=6, unique=True)):
                node.set(name, _xml_safe(draw(values())))
            if draw(st.booleans()):
                node.text = _xml_safe(draw(values()))
            node.extend(draw(children))
            return node

        return build()

    leaf = element(st.just([]))
    tree = st.recursive(leaf, lambda inner: element(st.lists(inner, max_size=5)), max_leaves=25)
    return tree.map(lambda root: ET.tostring(root, encoding="utf-8", xml_declaration=True))


def xml_grammar(
    root: str,
    children: dict[str, list[str]],
    attributes: dict[str, list[str]],
    namespaces: dict[str, str] | None = None,
    max_depth: int = 5,
    good: dict[str, list[str]] | None = None,
) -> st.SearchStrategy[bytes]:
    """XML that follows the format's structure, with a few faults planted in it.

    The document is built from the format's grammar (root, which children go
    where, which attributes each element has) with plausible values from
    ``good``; then up to three attributes anywhere in it get adversarial values.
    One fault deep in an otherwise sensible file is what reaches the
    converter's deep code, instead of every example failing the first check.
    ``namespaces`` maps a tag (or ``"*"``) to its namespace URI.
    """
    namespaces = namespaces or {}
    good = good or {}

    def qualified(tag: str) -> str:
        uri = namespaces.get(tag, namespaces.get("*", ""))
        return f"{{{uri}}}{tag}" if uri else tag

    @st.composite
    def build(draw: st.DrawFn, tag: str, depth: int) -> ET.Element:
        node = ET.Element(qualified(tag))
        for name in attributes.get(tag, []):
            if name in good:
                node.set(name, draw(st.sampled_from(good[name])))
            elif draw(st.booleans()):
                node.set(name, _xml_safe(draw(values())))
        if draw(st.integers(0, 9)) < 2:
            node.text = _xml_safe(draw(values()))
        allowed = children.get(tag, [])
        if allowed and depth < max_depth:
            for child_tag in draw(st.lists(st.sampled_from(allowed), max_size=4)):
                node.append(draw(build(child_tag, depth + 1)))
        return node

    @st.composite
    def document(draw: st.DrawFn) -> bytes:
        tree = draw(build(root, 0))
        nodes = list(tree.iter())
        for _ in range(draw(st.integers(0, 3))):
            node = draw(st.sampled_from(nodes))
            names = attributes.get(node.tag.rsplit("}", 1)[-1], [])
            if not names:
                continue
            name = draw(st.sampled_from(names))
            if draw(st.integers(0, 4)) == 0:
                node.attrib.pop(name, None)
            else:
                node.set(name, _xml_safe(draw(values())))
        return bytes(ET.tostring(tree, encoding="utf-8"))

    return document()


def _xml_safe(text: str) -> str:
    """Drop characters XML 1.0 cannot hold at all (the serializer would write them raw)."""
    return "".join(
        ch
        for ch in text
        if ch in "\t\n\r"
        or ("\x20" <= ch <= "\ud7ff")
        or ("\ue000" <= ch <= "\ufffd")
        or ("\U00010000" <= ch <= "\U0010ffff")
    )


def json_documents(keys: list[str]) -> st.SearchStrategy[bytes]:
    """JSON built from WSJF keys and plausible values."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**12), 10**12),
        st.floats(allow_nan=False, allow_infinity=False),
        values(),
    )
    tree = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.sampled_from(keys), inner, max_size=6),
        ),
        max_leaves=30,
    )
    return tree.map(lambda value: json.dumps(value).encode("utf-8"))


def load_json(relative: str) -> Any:
    return json.loads(sample(relative).read_text(encoding="utf-8"))
