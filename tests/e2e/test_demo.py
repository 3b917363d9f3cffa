"""``pywats-client demo`` end to end, as a user runs it: real processes, real kills.

Every test records all descendants of the demo process while it runs and
checks that none is left alive once the demo has exited (and kills any that
are, so a failing test never leaves processes behind).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e._supervisor import clean_env
from tests.helpers import installed_script, wait_until

pytestmark = pytest.mark.e2e

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def demo_command(*args: str) -> list[str]:
    """The installed ``pywats-client`` script (as a user types it), else ``python -m``."""
    script = installed_script()
    if script is not None:
        return [str(script), "demo", *args]
    return [sys.executable, "-m", "pywats_client", "demo", *args]


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class DemoRun:
    """One ``pywats-client demo`` process and every process it ever had below it."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.stdout_path = tmp_path / "demo.out"
        self.stderr_path = tmp_path / "demo.err"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                demo_command(*args), stdout=out, stderr=err, env=clean_env()
            )
        self.descendants: dict[int, psutil.Process] = {}
        self.registry: Path | None = None

    def watch(self) -> None:
        """Record the demo's descendants now (and the registry the supervisor runs on)."""
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self.descendants.setdefault(child.pid, child)
                # asked again each time: a child seen just after fork still shows
                # its parent's command line
                if self.registry is None:
                    with contextlib.suppress(psutil.Error):
                        cmd = child.cmdline()
                        if "--registry" in cmd:
                            self.registry = Path(cmd[cmd.index("--registry") + 1])

    def wait_exit(self, timeout: float) -> int:
        def finished() -> bool:
            self.watch()
            return self.proc.poll() is not None

        wait_until(finished, timeout, 0.1, message=lambda: f"the demo to finish:\n{self.err()}")
        return self.proc.returncode

    def wait_for_workers(self, count: int, timeout: float = 60.0) -> None:
        """Until the supervisor and ``count`` workers run (workers are its children)."""

        def ready() -> bool:
            self.watch()
            assert self.proc.poll() is None, f"demo exited early:\n{self.err()}"
            workers = 0
            for proc in self.descendants.values():
                with contextlib.suppress(psutil.Error):
                    if alive(proc) and "spawn_main" in " ".join(proc.cmdline()):
                        workers += 1
            return self.registry is not None and workers >= count

        wait_until(ready, timeout, 0.1, message=f"the supervisor and {count} workers")

    def left_alive(self) -> list[str]:
        out = []
        for proc in self.descendants.values():
            if alive(proc):
                with contextlib.suppress(psutil.Error):
                    out.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        return out

    def summary(self) -> dict[str, Any]:
        text = self.stdout_path.read_text(encoding="utf-8")
        try:
            data: dict[str, Any] = json.loads(text)
        except ValueError:
            raise AssertionError(f"not JSON on stdout:\n{text[-2000:]}\n{self.err()}") from None
        return data

    def err(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")[-3000:]

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for proc in self.descendants.values():
            with contextlib.suppress(psutil.Error):
                if alive(proc):
                    proc.kill()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Any]:
    runs: list[DemoRun] = []

    def start(*args: str) -> DemoRun:
        run = DemoRun(tmp_path, *args)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.cleanup()


def assert_nothing_left(run: DemoRun) -> None:
    # The demo waits for its supervisor and workers before it exits; a moment's grace
    # for the OS to reap them.
    wait_until(
        lambda: not run.left_alive(), 15.0, message=lambda: f"processes left: {run.left_alive()}"
    )


def test_demo_uploads_every_valid_file_once_and_cleans_up(demo: Any) -> None:
    run = demo("--files", "50", "--json", "--timeout", "75")
    code = run.wait_exit(timeout=150)
    data = run.summary()
    assert code == 0, f"exit {code}: {json.dumps(data, indent=1)[:3000]}\n{run.err()}"
    assert data["ok"] is True
    assert data["files_dropped"] == 50
    assert (data["valid_files"], data["bad_files"], data["slow_files"]) == (49, 1, 1)
    assert data["accepted"] == data["valid_files"] == 49
    assert data["lost"] == 0 and data["lost_files"] == []
    assert data["duplicates"] == 0 and data["unexpected"] == 0
    assert not data["timed_out"] and not data["interrupted"]
    # the bad file, and only it, went to Error with the converter's reason
    assert data["bad_errored"] == 1
    [errored] = data["errored"]
    assert errored["expected"] and errored["file"].endswith("-corrupt.json")
    assert "result" in errored["reason"]
    # one worker was really killed and the supervisor restarted it
    [kill] = data["kills"]
    assert kill["restarted_pid"] not in (None, kill["pid"])
    assert data["restarts"][kill["station"]] >= 1
    assert kill["pid"] in data["worker_pids"]
    assert [s["name"] for s in data["stations"]] == ["station-1", "station-2"]
    assert sum(s["accepted"] for s in data["stations"]) == 49
    assert data["folder"] is None
    # everything it started has stopped, and the temp folder is gone
    assert run.descendants, "no child process was ever seen"
    assert {data["supervisor_pid"], *data["worker_pids"]} <= set(run.descendants)
    assert_nothing_left(run)
    assert run.registry is not None and not run.registry.parent.exists()


def test_a_failed_demo_keeps_its_folder_and_stops_its_processes(demo: Any) -> None:
    run = demo("--files", "5", "--json", "--timeout", "1")
    code = run.wait_exit(timeout=60)
    data = run.summary()
    assert code == 1, run.err()
    assert data["timed_out"] is True and data["ok"] is False
    folder = Path(data["folder"])
    try:
        assert (folder / "instances.toml").is_file()
        assert (folder / "supervisor.out").is_file()
        assert_nothing_left(run)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@posix_only
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_stops_every_process_and_removes_the_folder(
    demo: Any, signum: signal.Signals
) -> None:
    run = demo("--files", "400", "--json", "--timeout", "120")
    run.wait_for_workers(2)
    run.proc.send_signal(signum)
    code = run.wait_exit(timeout=45)
    assert code == 130, run.err()
    data = run.summary()
    assert data["interrupted"] is True and data["files_dropped"] < 400
    assert_nothing_left(run)
    assert run.registry is not None and not run.registry.parent.exists()


@posix_only
def test_supervisor_stops_by_itself_when_the_demo_is_killed(demo: Any) -> None:
    """kill -9 of the demo (no cleanup possible) still leaves no supervisor or worker."""
    run = demo("--files", "400", "--json", "--timeout", "120")
    run.wait_for_workers(2)
    run.proc.kill()
    run.proc.wait(10)
    wait_until(
        lambda: not run.left_alive(), 40.0, message=lambda: f"processes left: {run.left_alive()}"
    )
    assert run.registry is not None
    # the supervisor stopped gracefully: it marked its status file as exited
    status = json.loads((run.registry.parent / ".pywats" / "status.json").read_text())
    assert status["supervisor"]["exited"] is True
    shutil.rmtree(run.registry.parent, ignore_errors=True)
