"""The Supervisor's Python API (what the control channel and the GUI build on).

Real worker processes with a fake client (tests/supervisor_fakes.py), so these
exercise process handling, commands, persisted choices, status and metrics
quickly.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pywats_client.control import UnknownInstance
from pywats_client.errors import InstanceLockedError
from pywats_client.supervisor import State, Supervisor, list_instances
from tests import supervisor_fakes
from tests.e2e._supervisor import alive, registry, station
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e


class Running:
    def __init__(self, path: Path) -> None:
        self.supervisor = Supervisor(path, runtime=supervisor_fakes.MODULE, install_signals=False)
        self.result: list[int] = []
        self.thread = threading.Thread(target=lambda: self.result.append(self.supervisor.run()))
        self.thread.start()
        assert self.supervisor.ready.wait(30) or not self.thread.is_alive()

    def wait_states(self, timeout: float = 30.0, **expected: State) -> None:
        def matches() -> bool:
            states = self.supervisor.states()
            pids = self.supervisor.pids()
            return all(
                states.get(name) is state and (pids.get(name) is not None) == _has_process(state)
                for name, state in expected.items()
            )

        wait_until(matches, timeout, message=lambda: f"{expected}; now {self.supervisor.states()}")

    def stop(self) -> None:
        self.supervisor.request_shutdown()
        self.thread.join(30)
        assert not self.thread.is_alive()
        assert self.result == [0]


def _has_process(state: State) -> bool:
    return state in (State.RUNNING, State.PAUSED, State.STARTING, State.STOPPING)


@pytest.fixture
def stations(tmp_path: Path) -> Path:
    for name in ("st-1", "st-2"):
        station(tmp_path, name)
    return registry(tmp_path, ["st-1", "st-2"], metrics_port=0)


@pytest.fixture
def running(stations: Path) -> Iterator[Running]:
    run = Running(stations)
    try:
        yield run
    finally:
        if run.thread.is_alive():
            run.stop()


def test_stop_start_restart_one_instance_leaves_the_other_alone(running: Running) -> None:
    sup = running.supervisor
    running.wait_states(**{"st-1": State.RUNNING, "st-2": State.RUNNING})
    other = sup.pids()["st-2"]
    first = sup.pids()["st-1"]
    assert first is not None
    sup.stop_instance("st-1")
    running.wait_states(**{"st-1": State.STOPPED})
    assert not alive(first)
    sup.start_instance("st-1")
    running.wait_states(**{"st-1": State.RUNNING})
    second = sup.pids()["st-1"]
    sup.restart_instance("st-1")
    wait_until(lambda: sup.pids()["st-1"] not in (None, second), 30, message="a new st-1 pid")
    running.wait_states(**{"st-1": State.RUNNING})
    assert sup.pids()["st-2"] == other
    with pytest.raises(UnknownInstance, match="st-9"):
        sup.stop_instance("st-9")


def test_pause_reaches_the_worker_and_choices_survive_a_restart(
    stations: Path, running: Running
) -> None:
    sup = running.supervisor
    running.wait_states(**{"st-1": State.RUNNING, "st-2": State.RUNNING})
    sup.pause_instance("st-2")
    sup.stop_instance("st-1")
    running.wait_states(**{"st-1": State.STOPPED, "st-2": State.PAUSED})

    def worker_says_paused() -> bool:
        (st2,) = [i for i in list_instances(stations) if i.name == "st-2"]
        return st2.uploads == "paused"

    wait_until(worker_says_paused, 15, message="the worker's snapshot shows uploads paused")
    running.stop()
    choices = json.loads((stations.parent / ".pywats" / "instances-state.json").read_text())
    assert choices == {"stopped": ["st-1"], "paused": ["st-2"]}

    again = Running(stations)
    try:
        again.wait_states(**{"st-1": State.STOPPED, "st-2": State.PAUSED})
        wait_until(worker_says_paused, 15, message="st-2 starts paused")
        again.supervisor.resume_instance("st-2")
        again.supervisor.start_instance("st-1")
        again.wait_states(**{"st-1": State.RUNNING, "st-2": State.RUNNING})
    finally:
        again.stop()


def test_status_and_metrics_while_running(stations: Path, running: Running) -> None:
    sup = running.supervisor
    running.wait_states(**{"st-1": State.RUNNING, "st-2": State.RUNNING})
    instances = wait_until(
        lambda: (
            (found := list_instances(stations))
            and all(i.snapshot is not None for i in found)
            and found
        ),
        15,
        message="heartbeats in status",
    )
    for inst in instances:
        assert inst.supervised and inst.state is State.RUNNING
        assert inst.pid == sup.pids()[inst.name]
        assert inst.rss and inst.rss > 1_000_000
        assert inst.heartbeat_age_s is not None and inst.heartbeat_age_s < 5
        assert inst.connection == "connected"
    assert sup.metrics_url and sup.metrics_url.startswith("http://127.0.0.1:")
    text = httpx.get(sup.metrics_url, timeout=10).text
    assert 'pywats_instance_up{instance="st-1"} 1.0' in text
    assert 'pywats_instance_state{instance="st-2",state="running"} 1.0' in text
    assert 'pywats_instance_restarts_total{instance="st-1"} 0.0' in text
    assert "pywats_instance_heartbeat_age_seconds" in text
    assert "pywats_instance_uploaded_total" in text


def test_a_second_supervisor_object_refuses(stations: Path, running: Running) -> None:
    running.wait_states(**{"st-1": State.RUNNING})
    with pytest.raises(InstanceLockedError, match="already running") as info:
        Supervisor(stations, runtime=supervisor_fakes.MODULE, install_signals=False).run()
    assert info.value.holder_pid is not None
