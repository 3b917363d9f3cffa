"""`pywats-client server` as a user runs it: a real process, real signals, real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pywats_client.standin import TOKEN_ENV_VAR, ServerThread, StandinServer
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

SERVER = [sys.executable, "-m", "pywats_client", "server"]


def launch(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environment.pop(TOKEN_ENV_VAR, None)
    environment.update(env or {})
    return subprocess.Popen(
        [*SERVER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def read_until_listening(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("listening on "):
        line = process.stdout.readline()
        assert line, f"server exited early: {lines}, stderr: {process.communicate()[1]}"
        lines.append(line.rstrip("\n"))
    return lines


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX; Windows uses Ctrl+Break")
def test_server_serves_on_a_free_port_and_stops_cleanly(tmp_path: Path) -> None:
    port_file = tmp_path / "p"
    process = launch("--port", "0", "--port-file", str(port_file), "--data", str(tmp_path / "d"))
    try:
        lines = read_until_listening(process)
        token = next(line.split(": ", 1)[1] for line in lines if line.startswith("token: "))
        url = lines[-1].removeprefix("listening on ")
        port = wait_until(lambda: port_file.read_text().strip(), 15, message="the port file")
        assert url == f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, trust_env=False) as http:
            assert http.get("/api/App/Version").status_code == 401
            version = http.get("/api/App/Version", headers={"Authorization": f"Basic {token}"})
            assert version.json() == "24.1.0-standin"
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "Traceback" not in stderr
    assert stdout.strip().endswith("stopped")
    assert not port_file.exists()  # a stale port file would mislead the next waiter
    assert (tmp_path / "d" / "standin.sqlite3").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery differs on Windows")
def test_ctrl_c_stops_cleanly_and_a_given_token_is_never_printed(tmp_path: Path) -> None:
    secret = "c2VjcmV0OnRva2Vu"
    process = launch("--data", str(tmp_path), env={TOKEN_ENV_VAR: secret})
    try:
        lines = read_until_listening(process)
        url = lines[-1].removeprefix("listening on ")
        with httpx.Client(base_url=url, trust_env=False) as http:
            headers = {"Authorization": f"Basic {secret}"}
            assert http.get("/api/App/Version", headers=headers).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert secret not in stdout + stderr + "\n".join(lines)
    assert "Traceback" not in stderr


def test_port_in_use_fails_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*SERVER, "--port", str(port), "--data", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_port_is_a_usage_error() -> None:
    result = subprocess.run(
        [*SERVER, "--port", "70000"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "70000 is not a port number" in result.stderr


def test_data_folder_in_use_fails_with_a_clear_message(tmp_path: Path) -> None:
    with ServerThread(StandinServer(data_dir=tmp_path)):
        result = subprocess.run(
            [*SERVER, "--data", str(tmp_path)], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert "another stand-in server is already using this data folder" in result.stderr


def test_server_stops_when_its_parent_process_dies(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"]  # a parent living until killed
    )
    try:
        process = launch("--data", str(tmp_path), "--parent-pid", str(parent.pid))
        read_until_listening(process)
        assert process.poll() is None
    finally:
        parent.kill()
        parent.wait()
    # A parent killed without cleaning up (kill -9, a crashed test run) leaves no orphan.
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert stdout.strip().endswith("stopped")
    assert f"parent process {parent.pid} is gone" in stderr
    assert "Traceback" not in stderr
