"""Helpers for the intake e2e tests: station configs, result files, a real `run` process.

:class:`RunProcess` starts ``pywats-client run --config F`` as a real child
process. ``prelude`` is Python run in that child before the CLI starts; the
crash tests use it to stop the worker at one exact moment (a patched function
writes a flag file and waits) so the test can SIGKILL it right there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests._standin import StandinClient
from tests.helpers import wait_until

__all__ = ["COUNT_RESCANS", "RunProcess", "write_config", "write_result", "wsjf"]

#: Prelude that makes the worker print a line after each full rescan of its
#: watch folders, so a test can wait for the watcher's progress
#: (:meth:`RunProcess.rescans`) instead of for some seconds.
COUNT_RESCANS = """
import pywats_client.services.file_watcher as _fw

_real_rescan = _fw.FileWatcher._rescan


async def _counted_rescan(self):
    await _real_rescan(self)
    print(f"test prelude: rescan {self.rescans} done", flush=True)


_fw.FileWatcher._rescan = _counted_rescan
"""


def wsjf(sn: str, pn: str = "PN-E2E") -> dict[str, Any]:
    """A small valid WSJF report without an id (the converter derives a stable one)."""
    return {
        "type": "T",
        "pn": pn,
        "sn": sn,
        "rev": "A",
        "processCode": 10,
        "result": "P",
        "start": "2026-03-02T09:15:00+01:00",
        "root": {
            "id": 0,
            "group": "M",
            "stepType": "SequenceCall",
            "name": "Main",
            "status": "P",
            "steps": [
                {
                    "id": 1,
                    "group": "M",
                    "stepType": "ET_NLT",
                    "name": "Vout",
                    "status": "P",
                    "numericMeas": [
                        {
                            "value": 5.01,
                            "unit": "V",
                            "compOp": "GELE",
                            "lowLimit": 4.9,
                            "highLimit": 5.1,
                            "status": "P",
                        }
                    ],
                }
            ],
        },
    }


def write_result(folder: Path, sn: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sn}.json"
    path.write_text(json.dumps(wsjf(sn)), encoding="utf-8")
    return path


def write_config(
    station: Path, server: StandinClient, watch: list[str] | None = None, **overrides: Any
) -> Path:
    """A station folder's config.json (paths relative to it) pointing at ``server``."""
    station.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "instance_name": f"e2e-{station.name}",
        "service_address": server.url,
        "api_token": server.token,
        "watch_paths": watch or ["in"],
        "queue_path": "queue",
        "converter_path": "converters",
        "ready_after": 0.5,
        "rescan_interval": 5.0,
        "log_level": "INFO",
    }
    settings.update(overrides)
    path = station / "config.json"
    path.write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return path


class RunProcess:
    """``pywats-client run --config F --no-live`` in a child process, output to a log file."""

    def __init__(self, config: Path, *, prelude: str = "", name: str = "run") -> None:
        self.config = config
        self.prelude = textwrap.dedent(prelude)
        self.log_path = config.parent / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._runs = 0

    def start(self, *, wait: bool = True) -> RunProcess:
        """Start the worker; ``wait`` until it runs (or exits). A test whose prelude
        stops the worker before it runs (during recovery) waits for its own sign."""
        self._runs += 1
        code = (
            f"{self.prelude}\n"
            "import sys\n"
            "from pywats_client.cli import main\n"
            f"sys.exit(main(['run', '--config', {str(self.config)!r}, '--no-live',"
            " '--status-interval', '1']))\n"
        )
        flags = subprocess.CREATE_NEW_PROCESS_GROUP if sys.platform == "win32" else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        log.write(f"--- run {self._runs} ---\n".encode())
        log.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PYWATS_API_TOKEN", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            creationflags=flags,
        )
        log.close()
        if not wait:
            return self
        try:
            wait_until(
                lambda: (
                    self.proc is not None
                    and (self.proc.poll() is not None or "running 'e2e-" in self.log())
                ),
                60,
                message=lambda: f"worker start; log:\n{self.tail()}",
            )
        except BaseException:
            self.kill()  # a worker that never came up must not outlive its test
            raise
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def current_log(self) -> str:
        """The log of the current (last started) run only."""
        return self.log().rpartition(f"--- run {self._runs} ---\n")[2]

    def rescans(self) -> int:
        """Full rescans the current run has done (needs the :data:`COUNT_RESCANS` prelude)."""
        return self.current_log().count("test prelude: rescan ")

    def wait_rescans(self, count: int, timeout: float = 60.0) -> None:
        """Wait until the current run has done ``count`` more full rescans."""
        first = self.rescans()
        wait_until(
            lambda: self.rescans() >= first + count,
            timeout,
            message=lambda: f"{count} more rescans; log:\n{self.tail()}",
        )

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """Graceful stop (SIGTERM, Ctrl+Break on Windows); returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            if sys.platform == "win32":
                self.proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
            else:
                self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL (TerminateProcess on Windows): no cleanup of any kind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)
