"""docs/converters.md: the worked example works as printed."""

from __future__ import annotations

import codecs
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from pywats_client.converters import ConverterManager
from pywats_client.errors import ConversionError
from tests.helpers import wait_until

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


# --- encodings the worked example must survive ---------------------------------------------


@pytest.mark.parametrize(
    ("bom", "encoding"),
    [(codecs.BOM_UTF8, "utf-8"), (b"", "utf-16"), (codecs.BOM_UTF16_BE, "utf-16-be")],
    ids=["utf-8 with BOM", "utf-16 (LE with BOM)", "utf-16-be with BOM"],
)
def test_the_worked_example_takes_files_saved_with_a_bom(
    manager: ConverterManager, tmp_path: Path, bom: bytes, encoding: str
) -> None:
    source = tmp_path / "board17.res"
    source.write_bytes(bom + _block("text", "# BENCHTEST v3").encode(encoding))
    conversion = manager.convert(source)
    assert conversion.converter == "bench-res"
    assert conversion.reports[0]["sn"] == "SN500-00017"


def test_the_documented_message_for_an_invalid_model_is_what_the_example_says(
    manager: ConverterManager, tmp_path: Path
) -> None:
    documented = re.search(
        r"`(converter 'bench-res' built an invalid UUTReport \(at\s+bench_res\.py line "
        r"(\d+)\): sn: [^`]*)`",
        DOC.read_text(encoding="utf-8"),
    )
    assert documented, "section 3 shows the message for UUTReport(sn='')"
    source = tmp_path / "nosn.res"
    source.write_text(_block("text", "# BENCHTEST v3").replace("SN500-00017", ""))
    with pytest.raises(ConversionError) as caught:
        manager.convert(source)
    expected = re.sub(r"\s+", " ", documented.group(1))
    assert str(caught.value) == f"nosn.res: {expected}"
    example = _block("python", "# converters/bench_res.py").splitlines()
    assert "UUTReport(" in example[int(documented.group(2)) - 1]


def test_the_report_fields_snippet_sets_what_it_says() -> None:
    namespace: dict[str, Any] = {}
    exec(_block("python", "# report header fields a converter often sets"), namespace)
    wsjf = namespace["report"].to_wsjf()
    assert (wsjf["processCode"], wsjf["processName"]) == (30, "Final test")
    assert wsjf["uut"] == {
        "user": "anna",
        "comment": "retest after rework",
        "fixtureId": "FX-7",
        "batchSN": "LOT-2611",
        "execTime": 42.5,
    }
    assert wsjf["miscInfos"] == [
        {"description": "Firmware", "text": "7.1.4"},
        {"description": "Supply voltage", "numeric": 24.0},
    ]


def test_the_create_step_examples_show_what_is_stored() -> None:
    from pywats_client.converters.builtin import CsvConverter  # any converter has the helper

    lines = _block("text", "# create_step in -> numericMeas[0] out").splitlines()[1:]
    pairs = list(zip(lines[::2], lines[1::2], strict=True))
    assert len(pairs) == 3
    for given, shown in pairs:
        assert shown.startswith("  -> ")
        step = CsvConverter().create_step(json.loads(given))
        data = step.model_dump(mode="json", by_alias=True, exclude_none=True)
        (measurement,) = data["numericMeas"]
        assert measurement == json.loads(shown[len("  -> ") :]), given
        assert data["status"] == measurement["status"]


# --- the end-to-end recipe ----------------------------------------------------------------


def _console_line(start: str) -> list[str]:
    for block in re.findall(r"```console\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S):
        for line in block.splitlines():
            if line.startswith(f"$ {start}"):
                return shlex.split(line[2:])
    raise AssertionError(f"no console line starting with {start!r} in {DOC}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT if sys.platform != "win32" else signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


@pytest.mark.e2e
def test_the_stand_in_recipe_works_as_written(tmp_path: Path) -> None:
    server_cmd = _console_line("pywats-client server")
    port_at = server_cmd.index("--port") + 1
    documented_port = server_cmd[port_at]
    server_cmd[port_at : port_at + 1] = ["0", "--port-file", str(tmp_path / "port")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    python = [sys.executable, "-m", "pywats_client"]
    parent = ["--parent-pid", str(os.getpid())]
    server = subprocess.Popen([*python, *server_cmd[1:], *parent], cwd=tmp_path, env=env)
    station: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: (tmp_path / "port").exists(), 60, message="the stand-in to listen")
        port = (tmp_path / "port").read_text().strip()
        config = json.loads(_block("json", '{\n    "instance_name": "bench-5"'))
        assert config["service_address"].endswith(f":{documented_port}")
        config["service_address"] = config["service_address"].replace(documented_port, port)
        (tmp_path / "bench5.json").write_text(json.dumps(config))
        (tmp_path / "converters").mkdir()
        (tmp_path / "converters" / "bench_res.py").write_text(
            _block("python", "# converters/bench_res.py")
        )
        run_cmd = _console_line("pywats-client run")
        station = subprocess.Popen([*python, *run_cmd[1:], "--no-live"], cwd=tmp_path, env=env)
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / "board17.res").write_text(_block("text", "# BENCHTEST v3"))

        curl = _console_line("curl -s -H")
        header = curl[curl.index("-H") + 1]
        name, _, value = header.partition(": ")
        listing = curl[-1].replace(documented_port, port)
        with httpx.Client(headers={name: value}, trust_env=False, timeout=30) as http:
            reports: list[dict[str, Any]] = []

            def received() -> bool:
                reports[:] = http.get(listing).json()
                return bool(reports)

            wait_until(received, 60, message="the report to reach the stand-in")
            (report,) = reports
            assert (report["pn"], report["sn"], report["result"]) == (
                "PCBA-500",
                "SN500-00017",
                "F",
            )
            stored = http.get(
                listing.replace("/standin/reports", f"/api/Report/Wsjf/{report['id']}")
            )
            assert stored.status_code == 200 and stored.json()["rev"] == "B"
        wait_until(lambda: (tmp_path / "in" / "Done" / "board17.res").exists(), 30)
    finally:
        if station is not None:
            _stop(station)
        _stop(server)
