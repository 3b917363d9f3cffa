"""`pywats-client run`: config errors, the instance lock, help, the status line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pywats_client.cli import main
from pywats_client.cli.run import format_status
from pywats_client.core import ClientConfig, ClientSnapshot, acquire_instance_lock


def test_bad_config_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "station.json"
    config.write_text(json.dumps({"watch_paths": ["in"], "ready_after": -1}))
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "station.json" in err and "ready_after" in err
    assert "Traceback" not in err


def test_missing_config_says_how_to_create_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(tmp_path / "nope.json")]) == 2
    assert "pywats-client init" in capsys.readouterr().err


def test_second_instance_is_refused_naming_the_holder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "station.json"
    ClientConfig(instance_name="line-2", watch_paths=[Path("in")], queue_path=Path("q")).save(path)
    lock = acquire_instance_lock(ClientConfig.load(path))
    try:
        assert main(["run", "--config", str(path), "--no-live"]) == 1
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert f"pid {os.getpid()}" in err and "line-2" in err and "already running" in err


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "pywats-client run --config station-1.json" in out and "Ctrl+C" in out


def test_status_line_is_compact_and_flags_trouble() -> None:
    snap = ClientSnapshot(
        files_seen=12,
        converted=11,
        errored=1,
        pending=3,
        uploaded=8,
        connection="connected",
        server_version="24.1.0",
        uploads="uploading",
        backpressure=True,
        warnings=["queue full"],
    )
    line = format_status("st-1", snap)
    assert "12 seen, 11 converted, 1 errored" in line
    assert "3 pending" in line and "8 uploaded" in line and "WATS 24.1.0" in line
    assert "QUEUE FULL" in line and "1 warning" in line
    assert "\n" not in line
