"""`pywats-client supervise`: the start banner appears only once the supervisor runs."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pywats_client.cli.supervise import run_announced
from pywats_client.core import Registry
from pywats_client.errors import InstanceLockedError
from pywats_client.supervisor._lock import SupervisorLock

BANNER = "supervising 1 instance(s) from x; Ctrl+C to stop"


class FakeSupervisor:
    def __init__(self, *, refuse: bool) -> None:
        self.refuse = refuse
        self.ready = threading.Event()

    def run(self) -> int:
        if self.refuse:
            raise InstanceLockedError("another supervisor (pid 4242) is already running")
        self.ready.set()
        return 0


def test_banner_is_printed_once_the_supervisor_is_ready(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_announced(FakeSupervisor(refuse=False), BANNER) == 0
    assert capsys.readouterr().err.count("supervising 1 instance(s)") == 1


def test_no_banner_when_the_supervisor_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InstanceLockedError):
        run_announced(FakeSupervisor(refuse=True), BANNER)
    assert "supervising" not in capsys.readouterr().err


def test_a_second_supervisor_refuses_without_the_start_banner(tmp_path: Path) -> None:
    registry = tmp_path / "instances.toml"
    registry.write_text(
        '[supervisor]\nlog_dir = "logs"\n\n[[instance]]\nname = "st-1"\nconfig = "st-1.json"\n'
    )
    lock = SupervisorLock(Registry.load(registry, check_configs=False).state_dir, registry)
    lock.acquire()  # the first supervisor
    try:
        second = subprocess.run(
            [sys.executable, "-m", "pywats_client", "supervise", "--registry", str(registry)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        lock.release()
    assert second.returncode == 1
    assert "another supervisor" in second.stderr and "already running" in second.stderr
    assert "supervising" not in second.stderr and "Ctrl+C to stop" not in second.stderr
