"""Safe, bounded XML parsing for converters.

Result files come from machines we do not control and sometimes from people
who want to see what breaks. Parsing goes through defusedxml with entity
declarations and external references refused, so a billion-laughs bomb or an
external-entity file fails at its first declaration, before anything expands.
The parse is streamed and stops at a maximum element count and nesting depth,
so even entity-free XML cannot make the worker hold unbounded data.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import defusedxml
import defusedxml.ElementTree as DET

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_ELEMENTS",
    "XmlRefused",
    "attr",
    "child",
    "children",
    "local_name",
    "namespace",
    "parse_xml",
    "text_of",
]

DEFAULT_MAX_ELEMENTS = 500_000
DEFAULT_MAX_DEPTH = 256


class XmlRefused(ValueError):
    """The XML is malformed, unsafe or too large; the message says which and why."""


def parse_xml(
    data: bytes,
    *,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> ET.Element:
    """The root element of ``data``, or :class:`XmlRefused` with the reason."""
    count = 0
    depth = 0
    root: ET.Element | None = None
    try:
        events = DET.iterparse(
            io.BytesIO(data),
            events=("start", "end"),
            forbid_dtd=False,
            forbid_entities=True,
            forbid_external=True,
        )
        for event, element in events:
            if event == "end":
                depth -= 1
                continue
            if root is None:
                root = element
            count += 1
            depth += 1
            if count > max_elements:
                raise XmlRefused(
                    f"XML has more than {max_elements} elements; refused to bound memory "
                    "(raise this converter's max_elements setting if the file is genuine)"
                )
            if depth > max_depth:
                raise XmlRefused(f"XML is nested more than {max_depth} elements deep; refused")
    except defusedxml.EntitiesForbidden as exc:
        raise XmlRefused(
            f"XML declares entity {exc.name!r}; entity declarations are refused because they "
            "enable entity-expansion bombs and external-entity reads"
        ) from None
    except defusedxml.DefusedXmlException as exc:
        raise XmlRefused(f"unsafe XML refused ({type(exc).__name__}: {exc})") from None
    except ET.ParseError as exc:
        raise XmlRefused(f"not well-formed XML: {exc}") from None
    except (LookupError, UnicodeError) as exc:
        raise XmlRefused(f"XML text cannot be decoded: {exc}") from None
    if root is None:
        raise XmlRefused("no XML element found")
    return root


def local_name(element: ET.Element) -> str:
    """The tag without its ``{namespace}``."""
    tag = element.tag
    if not isinstance(tag, str):  # comments and processing instructions
        return ""
    return tag.rsplit("}", 1)[-1]


def namespace(element: ET.Element) -> str:
    tag = element.tag
    if isinstance(tag, str) and tag.startswith("{"):
        return tag[1:].split("}", 1)[0]
    return ""


def children(element: ET.Element, name: str) -> Iterator[ET.Element]:
    """Direct children whose local name is ``name`` (any namespace)."""
    for item in element:
        if local_name(item) == name:
            yield item


def child(element: ET.Element, name: str) -> ET.Element | None:
    return next(children(element, name), None)


def attr(element: ET.Element, *names: str) -> str | None:
    """First attribute of ``names`` that is set and not blank, matched case-insensitively."""
    lowered = {key.rsplit("}", 1)[-1].lower(): value for key, value in element.attrib.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value is not None and value.strip():
            return value.strip()
    return None


def text_of(element: ET.Element | None) -> str | None:
    """Stripped text content of ``element``, ``None`` when empty."""
    if element is None or element.text is None:
        return None
    text = element.text.strip()
    return text or None
