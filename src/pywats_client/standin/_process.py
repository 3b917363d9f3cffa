"""Run ``pywats-client server`` as a child process and find its port.

For callers that want the stand-in in a process of its own (the demo, tests
that kill or restart it). The token goes through the environment, not the
command line, so it does not show in process listings.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from pywats_client.errors import FatalError

__all__ = ["TOKEN_ENV_VAR", "StandinProcess"]

#: Environment variable ``pywats-client server`` reads the token from when ``--token`` is absent.
TOKEN_ENV_VAR = "PYWATS_STANDIN_TOKEN"
PORT_FILE_NAME = "standin.port"
LOG_FILE_NAME = "standin.log"


class StandinProcess:
    """A stand-in server in a child process, storing into ``data_dir``.

    ``start()`` returns once the server listens; ``stop()`` asks it to stop
    (SIGTERM, or Ctrl+Break on Windows) and kills it if it does not. The
    server also stops by itself within about a second when this process dies.
    Its output goes to ``<data_dir>/standin.log``.
    """

    def __init__(
        self,
        data_dir: Path | str,
        token: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.token = token
        self.host = host
        self.requested_port = port
        self.port_file = self.data_dir / PORT_FILE_NAME
        self.log_file = self.data_dir / LOG_FILE_NAME
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._port: int | None = None

    def __repr__(self) -> str:
        return f"StandinProcess(pid={self.pid}, port={self._port}, token=***)"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the stand-in process is not started; call start() first")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 60.0) -> StandinProcess:
        """Launch the server and wait for its port file (FatalError if it exits or hangs)."""
        if self.is_running():
            raise RuntimeError("the stand-in process is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.port_file.unlink()
        args = [
            sys.executable,
            "-m",
            "pywats_client",
            "server",
            "--host",
            self.host,
            "--port",
            str(self.requested_port),
            "--port-file",
            str(self.port_file),
            "--data",
            str(self.data_dir),
            "--parent-pid",
            str(os.getpid()),
        ]
        # Its output file is read back as UTF-8 (Windows would write the ANSI code page).
        env = {
            **os.environ,
            TOKEN_ENV_VAR: self.token,
            "PYTHONUNBUFFERED": "1",
            "PYTHONIOENCODING": "utf-8",
        }
        flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        self._log = open(self.log_file, "ab")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            creationflags=flags,
        )
        deadline = time.monotonic() + timeout
        while True:
            port = self._read_port()
            if port is not None:
                self._port = port
                return self
            code = self._process.poll()
            if code is not None:
                self._close_log()
                raise FatalError(
                    f"the stand-in server exited with code {code} before listening; "
                    f"see {self.log_file}: {self._log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise FatalError(
                    f"the stand-in server did not listen within {timeout} s; see {self.log_file}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop gracefully, then forcibly after ``timeout`` s; returns the exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            if sys.platform == "win32":
                process.send_signal(signal.CTRL_BREAK_EVENT)
            else:
                process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_log()
        return process.returncode

    def kill(self) -> None:
        """Kill at once, as a crash or power cut would (for durability tests)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._close_log()

    def __enter__(self) -> StandinProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _read_port(self) -> int | None:
        try:
            text = self.port_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"
