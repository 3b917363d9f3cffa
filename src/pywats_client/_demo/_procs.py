"""The demo's real processes: the supervisor it starts, and the worker it kills.

The supervisor runs as ``pywats-client supervise`` in a child process of its
own process group (session on POSIX), so a Ctrl+C in the terminal reaches the
demo only and the demo decides the order: supervisor first (gracefully, its
workers drain), then the server. The child also watches the demo's pid and
stops by itself if the demo dies without cleaning up (see ``_child``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import psutil

from pywats_client.errors import FatalError

__all__ = ["SupervisorProcess", "kill_process"]


def kill_process(pid: int) -> bool:
    """Kill ``pid`` at once, as a crash would (SIGKILL; TerminateProcess on Windows).

    Returns False if it had already gone.
    """
    try:
        psutil.Process(pid).kill()
    except psutil.NoSuchProcess:
        return False
    return True


class SupervisorProcess:
    """``pywats-client supervise --registry REGISTRY`` as a child process."""

    def __init__(self, registry: Path, output: Path, *, log_level: str = "INFO") -> None:
        self.registry = registry
        self.output = output
        self.log_level = log_level
        self._process: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        #: Every worker seen, as psutil objects: they remember the process start time, so
        #: a reused pid is never mistaken for a worker.
        self.seen: dict[int, psutil.Process] = {}

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def start(self) -> None:
        args = [
            sys.executable,
            "-m",
            "pywats_client._demo._child",
            str(os.getpid()),
            "supervise",
            "--registry",
            str(self.registry),
            "--log-level",
            self.log_level,
        ]
        self._out = open(self.output, "ab")  # noqa: SIM115 - closed in stop()
        kwargs: dict[str, object] = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True
        # Its output file is read back as UTF-8 (Windows would write the ANSI code page).
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
        self._process = subprocess.Popen(  # type: ignore[call-overload]
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=env,
            **kwargs,
        )

    def check_alive(self) -> None:
        """Raise FatalError (with the tail of its output) if the supervisor has exited."""
        code = self.returncode()
        if code is not None:
            raise FatalError(
                f"the supervisor exited with code {code}; its output is in {self.output}: "
                f"{self.output_tail()}"
            )

    def remember_children(self) -> None:
        """Note the pids of the workers now running (to make sure none outlives the demo)."""
        if self._process is None:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self._process.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)

    def stop(self, timeout: float) -> int | None:
        """Stop gracefully (workers drain), kill everything left after ``timeout`` s.

        A second Ctrl+C while waiting kills at once. Returns the exit code.
        """
        process = self._process
        if process is None:
            return None
        self.remember_children()
        try:
            if process.poll() is None:
                if sys.platform == "win32":
                    process.send_signal(signal.CTRL_BREAK_EVENT)
                else:
                    process.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while process.poll() is None and time.monotonic() < deadline:
                    self.remember_children()
                    time.sleep(0.1)
        except KeyboardInterrupt:
            pass
        finally:
            self._kill_leftovers(process)
            if self._out is not None:
                self._out.close()
                self._out = None
        return process.returncode

    def _kill_leftovers(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            self.remember_children()
            with contextlib.suppress(OSError):
                process.kill()
            process.wait()
        # Workers exit by themselves once their supervisor has gone; wait a little, then
        # make sure.
        leftovers = [p for p in self.seen.values() if p.is_running()]
        _gone, alive = psutil.wait_procs(leftovers, timeout=5.0)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=5.0)

    def output_tail(self, lines: int = 5) -> str:
        try:
            text = self.output.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no output)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"
