"""docs/converters.md: the worked example works as printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pywats_client.converters import ConverterManager
from pywats_client.errors import ConversionError

DOC = Path(__file__).resolve().parents[2] / "docs" / "converters.md"


def _block(language: str, first_line: str) -> str:
    pattern = rf"```{language}\n({re.escape(first_line)}.*?)```"
    match = re.search(pattern, DOC.read_text(encoding="utf-8"), re.S)
    assert match, f"no {language} block starting with {first_line!r} in {DOC}"
    return match.group(1)


@pytest.fixture
def manager(tmp_path: Path) -> ConverterManager:
    folder = tmp_path / "converters"
    folder.mkdir()
    (folder / "bench_res.py").write_text(_block("python", "# converters/bench_res.py"))
    manager = ConverterManager.from_dirs([folder], entry_points=False)
    assert manager.load() == []
    return manager


def test_the_worked_example_converts_the_sample_shown(
    manager: ConverterManager, tmp_path: Path
) -> None:
    source = tmp_path / "board17.res"
    source.write_text(_block("text", "# BENCHTEST v3"))
    conversion = manager.convert(source)
    assert conversion.converter == "bench-res"
    (report,) = conversion.reports
    assert (report["pn"], report["rev"], report["sn"], report["result"]) == (
        "PCBA-500",
        "B",
        "SN500-00017",
        "F",
    )
    assert report["uut"]["user"] == "anna"
    group = report["root"]["steps"][0]
    assert group["status"] == "F"
    steps = group["steps"]
    assert [s["stepType"] for s in steps] == ["ET_NLT", "ET_NLT", "ET_PFT", "ET_PFT", "ET_SVT"]
    assert [s["status"] for s in steps[2:4]] == ["P", "F"]
    assert steps[1]["numericMeas"][0]["compOp"] == "LE"


def test_the_worked_example_refuses_a_truncated_file(
    manager: ConverterManager, tmp_path: Path
) -> None:
    path = tmp_path / "cut.res"
    path.write_text("# BENCHTEST v3\nUNIT;PCBA-500;B;SN1\n")
    with pytest.raises(ConversionError, match="file incomplete"):
        manager.convert(path)


def test_the_simple_result_format_example_parses(tmp_path: Path) -> None:
    from pywats_client.converters.builtin import CsvConverter  # any converter has the helper

    path = tmp_path / "unit.test"
    path.write_text(_block("text", "# Lines starting with # or ; are comments."))
    data = CsvConverter().parse_test_file(path)
    assert (data["part_number"], data["serial_number"], data["revision"]) == (
        "PCBA-400",
        "B400-0042",
        "A",
    )
    assert data["passed"] is True and data["operator"] == "nils"
    assert [s["name"] for s in data["steps"]] == [
        "Supply current",
        "Rails",
        "Display test",
        "Firmware",
    ]
