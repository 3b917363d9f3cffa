"""``pywats-client demo``: options, help, the demo folder it writes, the summary it prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from pywats_client._demo._setup import write_demo_folder
from pywats_client.cli import build_parser, main
from pywats_client.cli.demo import render_summary
from pywats_client.core.config import ClientConfig
from pywats_client.core.registry import Registry


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and "pywats-client demo --stations" in out
    for option in ("--stations", "--files", "--keep", "--json", "--timeout"):
        assert option in out


def test_defaults() -> None:
    args = build_parser().parse_args(["demo"])
    assert (args.stations, args.files, args.keep, args.json, args.timeout) == (
        2,
        40,
        False,
        False,
        60.0,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--files", "0"], "out of range"),
        (["--stations", "x"], "not a whole number"),
        (["--stations", "99"], "out of range"),
        (["--timeout", "-1"], "more than 0"),
        (["--timeout", "soon"], "not a number of seconds"),
    ],
)
def test_bad_options_exit_2_with_a_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "--help" in err


def test_demo_folder_is_an_ordinary_registry(tmp_path: Path) -> None:
    layout = write_demo_folder(tmp_path, 3, "http://127.0.0.1:9", "c2VjcmV0")
    registry = Registry.load(layout.registry)  # checks every config too
    assert registry.names == ["station-1", "station-2", "station-3"]
    configs = [ClientConfig.load(s.config_path) for s in layout.stations]
    assert [c.watch_dirs for c in configs] == [[s.watch_dir] for s in layout.stations]
    assert configs[0].converters == {
        "atml": {"enabled": False},
        "csv": {"enabled": False},
        "junit": {"enabled": False},
    }
    assert configs[1].file_patterns == ["*.csv", "*.xml"]
    assert configs[0].api_token.get_secret_value() == "c2VjcmV0"
    assert registry.supervisor.log_dir == Path("logs")  # logs stay in the demo folder
    assert registry.state_dir == tmp_path.resolve() / ".pywats"


def _data(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ok": True,
        "files_dropped": 3,
        "files_planned": 3,
        "valid_files": 2,
        "bad_files": 1,
        "slow_files": 1,
        "accepted": 2,
        "lost": 0,
        "duplicates": 0,
        "resubmitted": 0,
        "unexpected": 0,
        "bad_errored": 1,
        "errored": [
            {"station": "station-1", "file": "b.json", "reason": "b.json: bad", "expected": True}
        ],
        "lost_files": [],
        "restarts": {"station-1": 1},
        "kills": [
            {
                "station": "station-1",
                "pid": 5,
                "after_files": 2,
                "restarted_pid": 6,
                "back_after_s": 0.7,
            }
        ],
        "stations": [],
        "timed_out": False,
        "interrupted": False,
        "elapsed_s": 9.5,
        "folder": None,
        "server_url": "http://127.0.0.1:1",
    }
    data.update(over)
    return data


def text_of(data: dict[str, Any]) -> str:
    console = Console(width=200, record=True)
    console.print(render_summary(data))
    return console.export_text()


def test_summary_ok() -> None:
    text = text_of(_data())
    assert "OK: every one of the 2 valid files" in text
    assert "station-1/in/Error/b.json (the bad file, as planned): bad" in text
    assert "back as pid 6 in 0.7 s" in text
    assert "--keep" in text


def test_summary_failed_names_lost_files_and_what_to_do() -> None:
    text = text_of(
        _data(ok=False, lost=1, accepted=1, lost_files=["x.csv"], timed_out=True, folder="/d")
    )
    assert "lost: x.csv" in text
    assert "FAILED: the deadline passed" in text and "folder is kept" in text
    assert "pywats-client status --registry /d/instances.toml" in text


def test_summary_interrupted_does_not_call_pending_files_lost() -> None:
    text = text_of(_data(ok=False, lost=1, lost_files=["x.csv"], interrupted=True))
    assert "not uploaded yet" in text and "lost: x.csv" not in text
    assert "Interrupted" in text
