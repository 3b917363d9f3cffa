"""The control channel of a real ``pywats-client supervise`` process (fake worker clients).

Worker processes are real; their client is the fake of tests/supervisor_fakes.py,
so these tests exercise the channel, the CLI and the persisted choices quickly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pywats_client.control import SupervisorControl
from pywats_client.control import _endpoint as ep
from pywats_client.supervisor import list_instances
from tests.e2e._control import by_name, cli, cli_json
from tests.e2e._supervisor import SupervisorRun, alive, registry, station, supervisor_runs
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

NAMES = ["st-1", "st-2", "st-3"]
FAKE = {"PYWATS_TEST_WORKER_RUNTIME": "tests.supervisor_fakes"}


@pytest.fixture
def supervisor_factory() -> Iterator[Callable[..., SupervisorRun]]:
    yield from supervisor_runs()


@pytest.fixture
def stations(tmp_path: Path) -> Path:
    for name in NAMES:
        station(tmp_path, name)
    return registry(tmp_path, NAMES)


def uploads(path: Path, name: str) -> str | None:
    (inst,) = [i for i in list_instances(path) if i.name == name]
    return inst.uploads


def test_stop_and_pause_survive_a_supervisor_restart(
    stations: Path, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    sup = supervisor_factory(stations, **FAKE)
    first = sup.wait_running(*NAMES)

    stopped = by_name(cli_json("stop", "st-1", registry=stations))
    assert stopped["st-1"]["state"] == "stopped" and stopped["st-1"]["done"]
    assert stopped["st-1"]["previous_pid"] == first["st-1"]["pid"]
    paused = by_name(cli_json("pause", "st-2", registry=stations))
    assert paused["st-2"]["state"] == "paused" and paused["st-2"]["done"]
    assert paused["st-2"]["uploads"] == "paused"  # the worker confirmed before the answer
    assert not alive(first["st-1"]["pid"])
    assert sup.instance("st-3")["pid"] == first["st-3"]["pid"]

    assert sup.terminate() == 0
    gone = cli("restart", "st-3", "--registry", str(stations))
    assert gone.returncode == 1
    assert "no supervisor is running" in gone.stderr
    assert f"pywats-client supervise --registry {stations}" in gone.stderr

    again = supervisor_factory(stations, **FAKE)
    again.wait_running("st-3")
    again.wait_state("st-2", "paused")
    wait_until(lambda: uploads(stations, "st-2") == "paused", 15, message="st-2 starts paused")
    assert again.instance("st-1")["state"] == "stopped"
    assert again.instance("st-1")["pid"] is None

    started = by_name(cli_json("start", "st-1", registry=stations))
    assert started["st-1"]["state"] == "running" and started["st-1"]["pid"]
    resumed = by_name(cli_json("resume", "st-2", registry=stations))
    assert resumed["st-2"]["state"] == "running" and not resumed["st-2"]["paused"]
    again.wait_running(*NAMES)
    choices = json.loads((stations.parent / ".pywats" / "instances-state.json").read_text())
    assert choices == {"stopped": [], "paused": []}


@pytest.mark.skipif(sys.platform == "win32", reason="raw Unix-socket clients")
def test_stalled_clients_never_hold_up_the_supervisor(
    stations: Path, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    sup = supervisor_factory(stations, **FAKE)
    first = sup.wait_running(*NAMES)
    endpoint = ep.read_endpoint(stations.parent / ".pywats")
    assert endpoint is not None and endpoint.pid == sup.pid
    stalled = []
    for _ in range(3):  # connect and say nothing / half a message; held 10 s by the server
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(endpoint.address)
        stalled.append(sock)
    stalled[-1].sendall(struct.pack("!i", 500) + b"half")
    try:
        began = time.monotonic()
        # the loop still notices a killed worker and restarts it ...
        os.kill(first["st-1"]["pid"], signal.SIGKILL)
        sup.wait(
            lambda i: i["st-1"].get("pid") not in (None, first["st-1"]["pid"]),
            timeout=8,
            what="st-1 restarted while clients stall",
        )
        # ... and other clients are served at once
        result = SupervisorControl(stations, timeout=8).restart("st-2", wait=8)
        assert result.ok and result["st-2"].pid != first["st-2"]["pid"]
        assert time.monotonic() - began < 9, "served before the stalled clients timed out"
    finally:
        for sock in stalled:
            sock.close()
    assert sup.instance("st-3")["pid"] == first["st-3"]["pid"]


def test_control_files_go_away_with_the_supervisor(
    stations: Path, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    state = stations.parent / ".pywats"
    sup = supervisor_factory(stations, **FAKE)
    sup.wait_running(*NAMES)
    endpoint = ep.read_endpoint(state)
    assert endpoint is not None
    info = SupervisorControl(stations).ping()
    assert info.pid == sup.pid and info.instances == tuple(NAMES)
    assert sup.terminate() == 0
    assert not (state / ep.ADDR_NAME).exists() and not (state / ep.KEY_NAME).exists()
    assert not Path(endpoint.address).exists()
    assert not SupervisorControl(stations).is_running()
