"""`pywats-client run`: config errors, the instance lock, help, the status line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pywats_client.cli import main
from pywats_client.cli.run import _install_stop_handlers, format_status
from pywats_client.core import ClientConfig, ClientSnapshot, acquire_instance_lock
from tests.helpers import wait_until


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


class SlowToStop:
    """A WATSClient whose graceful stop takes long (uploads draining)."""

    started = threading.Event()
    stopping = threading.Event()

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.restart_required: str | None = None

    async def start(self) -> None:
        SlowToStop.started.set()

    def snapshot(self) -> ClientSnapshot:
        return ClientSnapshot()

    async def stop(self, timeout: float) -> None:
        SlowToStop.stopping.set()
        await asyncio.sleep(120)


@pytest.fixture
def signal_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT to its own process")
def test_a_second_ctrl_c_says_it_stops_now_and_that_the_queue_stays(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    signal_handlers: None,
) -> None:
    path = tmp_path / "station.json"
    ClientConfig(instance_name="line-2", watch_paths=[Path("in")], queue_path=Path("q")).save(path)
    monkeypatch.setattr("pywats_client.core.client.WATSClient", SlowToStop)
    SlowToStop.started.clear()
    SlowToStop.stopping.clear()

    def press_ctrl_c_twice() -> None:
        wait_until(SlowToStop.started.is_set, 30, message="the instance to start")
        os.kill(os.getpid(), signal.SIGINT)
        wait_until(SlowToStop.stopping.is_set, 30, message="the graceful stop to begin")
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c_twice, daemon=True)
    presser.start()
    started = time.monotonic()
    assert main(["run", "--config", str(path), "--no-live", "--stop-timeout", "100"]) == 130
    presser.join(5)
    assert time.monotonic() - started < 60  # did not wait out the 120 s stop
    err = " ".join(capfd.readouterr().err.split())
    assert "line-2: stopping now, without waiting for uploads in flight" in err
    assert "queued reports stay queued in" in err and "are sent at the next start" in err
    assert signal.getsignal(signal.SIGTERM) is not signal.getsignal(signal.SIGINT)  # restored


def test_stop_handlers_call_on_force_only_on_the_second_request(
    signal_handlers: None,
) -> None:
    forced: list[int] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        restore = _install_stop_handlers(asyncio.get_running_loop(), stop, lambda: forced.append(1))
        try:
            handler = signal.getsignal(signal.SIGINT)
            assert callable(handler)
            handler(signal.SIGINT, None)
            await asyncio.wait_for(stop.wait(), 10)
            assert forced == []
            with pytest.raises(KeyboardInterrupt):
                handler(signal.SIGINT, None)
            assert forced == [1]
        finally:
            restore()

    asyncio.run(scenario())
