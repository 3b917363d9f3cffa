"""`pywats-client init`: the starting config it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pywats_client.cli import main


def test_init_takes_a_relative_watch_folder_from_where_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The config resolves relative paths against its folder: init must not shift them."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "stations" / "st-1.json"
    config.parent.mkdir()
    args = ["--watch", "in", "--watch", "D:\\Results", "--watch", "../up/../over/./eol"]
    assert main(["init", "--config", str(config), *args]) == 0
    written = json.loads(config.read_text(encoding="utf-8"))
    # stored as the folder it names, so status and logs show a path an operator recognises
    over = str(tmp_path.parent / "over" / "eol")
    assert written["watch_paths"] == [str(tmp_path / "in"), "D:\\Results", over]


def test_init_never_overwrites_a_config_unless_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "st-1.json"
    assert main(["init", "--config", str(config)]) == 0
    config.write_text('{"instance_name": "edited by hand"}')
    capsys.readouterr()
    assert main(["init", "--config", str(config)]) == 2  # the command must change
    err = capsys.readouterr().err
    assert f"{config}: already exists" in err and "--force" in err
    assert config.read_text() == '{"instance_name": "edited by hand"}'
    assert main(["init", "--config", str(config), "--force"]) == 0
    assert json.loads(config.read_text(encoding="utf-8"))["instance_name"] != "edited by hand"
