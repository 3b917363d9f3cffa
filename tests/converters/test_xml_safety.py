"""Malicious and oversized XML is refused quickly, with bounded memory, with a reason."""

from __future__ import annotations

import shutil
import time
import tracemalloc
from pathlib import Path

import pytest

from pywats_client.converters import ConverterManager
from pywats_client.converters._xml import XmlRefused, parse_xml
from pywats_client.converters.builtin import AtmlConverter, JUnitConverter, WsxfConverter
from pywats_client.core.config import ClientConfig
from pywats_client.errors import ConversionError
from tests.converters.support import sample

XML_CONVERTERS = [WsxfConverter, JUnitConverter, AtmlConverter]


def _refused_within_bounds(path: Path, converter_name: str | None = None) -> ConversionError:
    manager = ConverterManager(ClientConfig(), plugin_dirs=[], entry_points=False)
    manager.load()
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ConversionError) as caught:
            manager.convert(path)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 2.0, f"took {elapsed:.2f} s"
    assert peak < 5 * 1024 * 1024, f"peak memory {peak} bytes"
    if converter_name is not None:
        assert caught.value.converter == converter_name
    return caught.value


def test_billion_laughs_is_refused_before_expanding(tmp_path: Path) -> None:
    source = tmp_path / "results.xml"
    shutil.copy(sample("xml/billion_laughs.xml"), source)
    error = _refused_within_bounds(source, "junit")
    assert "declares entity 'lol'" in str(error)
    assert "entity-expansion bombs" in str(error)


def test_an_external_entity_is_refused_and_nothing_is_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOKEN-DO-NOT-LEAK")
    source = tmp_path / "report.xml"
    source.write_text(
        sample("xml/external_entity.xml").read_text().replace("/etc/passwd", secret.as_posix())
    )
    error = _refused_within_bounds(source, "wsxf")
    assert "declares entity 'secret'" in str(error)
    assert "TOKEN-DO-NOT-LEAK" not in str(error)


@pytest.mark.parametrize("converter_class", XML_CONVERTERS)
def test_every_xml_converter_refuses_entities(tmp_path: Path, converter_class: type) -> None:
    source = tmp_path / "bomb.xml"
    shutil.copy(sample("xml/billion_laughs.xml"), source)
    with pytest.raises(ConversionError, match="declares entity"):
        converter_class().convert(source)


def test_a_harmless_doctype_without_entities_is_accepted() -> None:
    root = parse_xml(b'<?xml version="1.0"?><!DOCTYPE testsuite><testsuite name="a"/>')
    assert root.get("name") == "a"


def test_parameter_entities_are_refused() -> None:
    data = b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]><r/>'
    with pytest.raises(XmlRefused, match="declares entity"):
        parse_xml(data)


def test_element_count_and_depth_are_bounded() -> None:
    many = b"<r>" + b"<a/>" * 1001 + b"</r>"
    with pytest.raises(XmlRefused, match="more than 1000 elements"):
        parse_xml(many, max_elements=1000)
    deep = b"<a>" * 300 + b"</a>" * 300
    with pytest.raises(XmlRefused, match="nested more than 256"):
        parse_xml(deep)
    assert parse_xml(b"<a>" * 200 + b"</a>" * 200).tag == "a"


def test_element_bound_is_a_setting_and_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "big.xml"
    cases = "".join(f'<testcase name="t{i}"/>' for i in range(50))
    source.write_text(f"<testsuite>{cases}</testsuite>")
    converter = JUnitConverter()
    converter.configure({"max_elements": 20})
    with pytest.raises(ConversionError, match="more than 20 elements") as caught:
        converter.convert(source)
    assert "max_elements" in str(caught.value)


def test_xml_larger_than_the_converter_limit_is_refused_unread(tmp_path: Path) -> None:
    source = tmp_path / "huge.xml"
    source.write_bytes(b"<testsuite>" + b" " * (2 * 1024 * 1024) + b"</testsuite>")
    converter = JUnitConverter()
    converter.configure({"max_size": 1024 * 1024})
    tracemalloc.start()
    try:
        with pytest.raises(ConversionError, match="larger than the limit of 1048576 bytes"):
            converter.convert(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * 1024 * 1024
    assert JUnitConverter().size_limit == 16 * 1024 * 1024  # the default for XML
