"""`pywats-client convert` and `pywats-client converters`."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from pywats_client.cli import main
from pywats_client.cli._output import console
from tests.converters.support import sample
from tests.helpers import run_cli


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def station(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A station folder with the seed README's converter in ./converters."""
    (tmp_path / "converters").mkdir()
    shutil.copy(sample("seed/my_converter.py.txt"), tmp_path / "converters" / "my_converter.py")
    shutil.copy(sample("seed/board_0042.test"), tmp_path / "board_0042.test")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_convert_shows_the_converter_and_the_wsjf(
    capsys: pytest.CaptureFixture[str], station: Path
) -> None:
    code, out, err = run(capsys, "convert", "board_0042.test")
    assert code == 0, err
    assert "converted by My Test System Converter" in out
    assert "plugin:" in out and "my_converter.py" in out
    assert '"sn": "B400-0042"' in out
    assert err == ""


def test_convert_json_is_one_document_for_programs(
    capsys: pytest.CaptureFixture[str], station: Path
) -> None:
    code, out, _ = run(capsys, "convert", str(sample("wats_text/sn000123_pass.txt")), "--json")
    assert code == 0
    document = json.loads(out)
    assert (document["converter"], document["origin"]) == ("wats-text", "built-in")
    assert len(document["source_sha256"]) == 64
    (report,) = document["reports"]
    assert report["sn"] == "SN-000123"


def test_convert_with_a_config_uses_its_instance_and_converter_settings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "station.json"
    config.write_text(
        json.dumps(
            {
                "instance_name": "line9",
                "location": "Oslo",
                "converters": {"csv": {"patterns": ["*.log"], "fields": {"start": "TestTime"}}},
            }
        )
    )
    log = tmp_path / "station7.log"
    shutil.copy(sample("csv/station7.log"), log)
    code, out, err = run(capsys, "convert", str(log), "--config", str(config), "--json")
    assert code == 0, err
    (report,) = json.loads(out)["reports"]
    assert report["location"] == "Oslo"
    assert report["start"] == "2026-03-09T11:04:55+01:00"


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        (
            {"file_patterns": ["*.csv"]},
            "it does not match file_patterns ['*.csv']; add a pattern such as '*.log' to "
            "file_patterns",
        ),
        ({"ignore_patterns": ["station*"]}, "it matches ignore_patterns ['station*']"),
        ({"ready_marker": "7.log"}, "it is a ready marker (ready_marker '7.log'), not a result"),
    ],
)
def test_convert_warns_when_the_station_would_not_take_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, settings: dict[str, Any], why: str
) -> None:
    """A converter that works here and a station that never looks at the file."""
    config = tmp_path / "station.json"
    config.write_text(json.dumps({"converters": {"csv": {"patterns": ["*.log"]}}, **settings}))
    log = tmp_path / "station7.log"
    shutil.copy(sample("csv/station7.log"), log)
    code, _, err = run(capsys, "convert", str(log), "--config", str(config))
    assert code == 0, err
    message = " ".join(err.split())
    assert f"warning: the station would not take 'station7.log' from its watch folder: {why}" in (
        message
    )


def test_a_conversion_error_exits_1_naming_converter_and_reason(
    capsys: pytest.CaptureFixture[str], station: Path
) -> None:
    path = str(sample("wats_text/unknown_uut_status.txt"))
    code, out, err = run(capsys, "convert", path)
    assert code == 1
    assert "UUTStatus 'Maybe' is not Passed" in err
    code, out, _ = run(capsys, "convert", path, "--json")
    document = json.loads(out)
    assert code == 1 and document["converter"] == "wats-text"
    assert "Maybe" in document["error"]


def test_no_converter_exits_1_listing_what_was_tried(
    capsys: pytest.CaptureFixture[str], station: Path
) -> None:
    (station / "scope.png").write_bytes(b"\x89PNG....")
    code, out, err = run(capsys, "convert", "scope.png")
    assert code == 1
    assert "no converter accepts this file" in err
    assert "converters tried" in err and "My Test System Converter" in err
    code, out, _ = run(capsys, "convert", "scope.png", "--json")
    tried = {t["name"]: t for t in json.loads(out)["tried"]}
    assert tried["csv"]["reason"] == "name does not match *.csv, *.tsv"


def test_a_crashing_plugin_shows_its_traceback(
    capsys: pytest.CaptureFixture[str], station: Path
) -> None:
    (station / "converters" / "my_converter.py").write_text(
        "from pywats_client.converters import BaseConverter\n"
        "class Crash(BaseConverter):\n"
        "    name = 'crash'\n"
        "    patterns = ['*.test']\n"
        "    def convert(self, file_path):\n"
        "        return 1 / 0\n"
    )
    code, _, err = run(capsys, "convert", "board_0042.test")
    assert code == 1
    assert "converter 'crash' failed: ZeroDivisionError" in err
    assert "Traceback" in err and "return 1 / 0" in err


def test_converters_lists_built_ins_and_plugins_with_origin(
    capsys: pytest.CaptureFixture[str], station: Path
) -> None:
    code, out, err = run(capsys, "converters", "--json")
    assert code == 0, err
    document = json.loads(out)
    origins = {c["name"]: c["origin"] for c in document["converters"]}
    assert {k: v for k, v in origins.items() if v == "built-in"}.keys() == {
        "wsjf",
        "wsxf",
        "wats-text",
        "junit",
        "atml",
        "csv",
    }
    assert origins["My Test System Converter"].endswith("my_converter.py")
    assert document["problems"] == []
    code, out, _ = run(capsys, "converters")
    assert code == 0 and "wats-text" in out and "built-in" in out


def test_converters_reports_load_problems_and_exits_1(
    capsys: pytest.CaptureFixture[str], station: Path
) -> None:
    plugins = station / "plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text("import does_not_exist_anywhere\n")
    code, _, err = run(capsys, "converters", "--converter-path", str(plugins))
    assert code == 1
    assert "broken.py" in err and "ModuleNotFoundError" in err and "line 1" in err
    code, out, _ = run(capsys, "converters", "--converter-path", str(plugins), "--json")
    (problem,) = json.loads(out)["problems"]
    assert problem["file"].endswith("broken.py")


def test_a_bad_config_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text('{"converters": []}')
    code, _, err = run(capsys, "converters", "--config", str(config))
    assert code == 2 and "converters" in err


@pytest.mark.parametrize("command", ["convert", "converters"])
def test_help_has_an_example(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main([command, "--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and f"pywats-client {command}" in out


def test_output_the_code_page_cannot_encode_is_escaped_not_a_crash(tmp_path: Path) -> None:
    """Windows writes a redirected stdout in cp1252; a CJK serial must not end the command."""
    result_file = tmp_path / "r.json"
    result_file.write_text(
        json.dumps({"pn": "p", "sn": "序列号", "rev": "1", "processCode": 10, "result": "P"}),
        encoding="utf-8",
    )
    shown = run_cli("convert", str(result_file), PYTHONIOENCODING="cp1252")
    assert shown.returncode == 0, shown.stderr
    assert '"sn": "\\u5e8f\\u5217\\u53f7"' in shown.stdout
    as_json = run_cli("convert", str(result_file), "--json", PYTHONIOENCODING="cp1252")
    assert json.loads(as_json.stdout)["reports"][0]["sn"] == "序列号"


# --- output that stays whole: JSON that parses, names not wrapped ----------------------

LONG_NAME = "Supply current at the nominal input voltage, measured after warm-up " * 3
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def long_report(tmp_path: Path) -> Path:
    path = tmp_path / "long.json"
    report = {"pn": "PCBA-400", "sn": "B400-0042", "rev": "A", "processCode": 10, "result": "P"}
    path.write_text(json.dumps({**report, "root": {"name": LONG_NAME.strip()}}))
    return path


def shown_report(out: str) -> dict[str, Any]:
    """The JSON document `convert` prints after its 'report <id>' line."""
    text = ANSI.sub("", out)
    document: dict[str, Any] = json.loads(text[text.index("\n{") :])
    return document


def test_convert_redirected_prints_json_that_parses(tmp_path: Path) -> None:
    """`pywats-client convert FILE > report.txt` from an 80-column terminal."""
    shown = run_cli("convert", str(long_report(tmp_path)), COLUMNS="80")
    assert shown.returncode == 0, shown.stderr
    assert shown_report(shown.stdout)["root"]["name"] == LONG_NAME.strip()


def test_convert_on_an_80_column_terminal_prints_json_that_parses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "_force_terminal", True)
    monkeypatch.setattr(console, "_width", 80)
    code, out, err = run(capsys, "convert", str(long_report(tmp_path)))
    assert code == 0, err
    assert shown_report(out)["root"]["name"] == LONG_NAME.strip()


def test_a_missing_file_hints_at_the_path_not_at_converters(
    capsys: pytest.CaptureFixture[str], station: Path
) -> None:
    code, _, err = run(capsys, "convert", "results/nope.xml")
    assert code == 1
    text = " ".join(err.split())
    assert "file not found" in text and "hint: check the path" in text
    assert str(station) in text  # where a relative path was looked for
    assert "converter" not in text.split("hint:", 1)[1]
    assert "converters tried" not in err


def test_a_folder_or_an_empty_file_gets_its_own_hint(
    capsys: pytest.CaptureFixture[str], station: Path
) -> None:
    code, _, err = run(capsys, "convert", "converters")
    assert code == 1 and "hint: name a result file" in err
    (station / "empty.test").write_bytes(b"")
    code, _, err = run(capsys, "convert", "empty.test")
    assert code == 1 and "empty" in err
    assert "add a converter" not in err and "converters tried" not in err


def test_converters_at_80_columns_keep_names_whole(
    capsys: pytest.CaptureFixture[str], station: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "_force_terminal", True)
    monkeypatch.setattr(console, "_width", 80)
    code, out, _ = run(capsys, "converters")
    assert code == 0
    lines = ANSI.sub("", out).splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert any("My Test System Converter" in line for line in lines)
    assert "…" not in out


_HANGING = """
import time
from pathlib import Path
from pywats_client.converters import BaseConverter

class Hanger(BaseConverter):
    name = "hanger"

    def can_convert(self, file_path: Path) -> bool:
        return file_path.suffix == ".hang"

    def convert(self, file_path: Path) -> None:
        time.sleep(120)
"""


def test_a_hanging_converter_is_given_up_after_converter_timeout(tmp_path: Path) -> None:
    """As in the service: the dry run must not hang with the converter."""
    (tmp_path / "converters").mkdir()
    (tmp_path / "converters" / "hanger.py").write_text(_HANGING)
    (tmp_path / "board.hang").write_text("x")
    (tmp_path / "config.json").write_text(json.dumps({"converter_timeout": 1}))
    started = time.monotonic()
    shown = run_cli(
        "convert", "board.hang", "--config", "config.json", "--converter-path", "converters",
        cwd=tmp_path,
    )  # fmt: skip
    assert time.monotonic() - started < 30  # not the converter's 120 s
    assert shown.returncode == 1
    assert "the converter 'hanger' did not finish within converter_timeout (1 s)" in shown.stderr
    assert "where it was stuck" in shown.stderr and "time.sleep(120)" in shown.stderr
    as_json = run_cli(
        "convert", "board.hang", "--config", "config.json", "--converter-path", "converters",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert "time.sleep(120)" in json.loads(as_json.stdout)["stack"]
