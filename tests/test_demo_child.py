"""``_demo._child``: the supervisor the demo starts stops when the demo is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter

import pytest

from pywats_client._demo import _child
from tests.helpers import wait_until


def test_usage_error_without_a_parent_pid(capsys: pytest.CaptureFixture[str]) -> None:
    assert _child.main([]) == 2
    assert _child.main(["supervise"]) == 2
    assert "PARENT_PID COMMAND" in capsys.readouterr().err


def test_stops_when_the_parent_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    stopped = threading.Event()
    monkeypatch.setattr(_child, "_stop_self", stopped.set)
    pid = subprocess.Popen([sys.executable, "-c", "pass"])
    pid.wait()
    _child.watch_parent(pid.pid, interval=0.02)
    assert stopped.wait(10), "the watcher did not notice its parent had exited"


def test_keeps_running_while_the_parent_lives(monkeypatch: pytest.MonkeyPatch) -> None:
    stopped = threading.Event()
    monkeypatch.setattr(_child, "_stop_self", stopped.set)
    looks = Counter[str]()
    real_alive = _child._parent_alive

    def parent_alive(pid: int, create_time: float | None) -> bool:
        looks["parent"] += 1
        return real_alive(pid, create_time)

    monkeypatch.setattr(_child, "_parent_alive", parent_alive)
    cancel = threading.Event()
    thread = _child.watch_parent(os.getpid(), interval=0.02, cancel=cancel)
    # the watcher looked at its (living) parent 10 times and stopped nothing
    wait_until(lambda: looks["parent"] >= 10, 15, 0.01, message="10 looks at the parent")
    assert not stopped.is_set()
    assert thread.is_alive() and thread.daemon
    cancel.set()
    thread.join(5)
    assert not thread.is_alive() and not stopped.is_set()
