"""Operator control of real stations: a real supervisor, real workers, the real stand-in.

Done-when of issue 12: restart one of three without touching the others;
a stopped station's folder fills untouched and ``start`` drains it; ``pause``
holds uploads and ``resume`` delivers each report once; a wrong key and
random bytes leave the supervisor running and answering.
"""

from __future__ import annotations

import os
import random
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
from pathlib import Path
from typing import Any

import pytest

from pywats_client.control import SupervisorControl
from pywats_client.control import _endpoint as ep
from pywats_client.supervisor import list_instances
from tests._standin import StandinClient
from tests.e2e._control import by_name, cli_json
from tests.e2e._supervisor import SupervisorRun, drop, registry, station, supervisor_runs
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def supervisor_factory() -> Iterator[Callable[..., SupervisorRun]]:
    yield from supervisor_runs()


def stations(root: Path, server: StandinClient, names: list[str]) -> Path:
    for name in names:
        station(root, name, server)
    return registry(root, names)


def sns(server: StandinClient, prefix: str) -> list[str]:
    return [r["sn"] for r in server.reports() if r["sn"].startswith(prefix)]


def exactly_once(server: StandinClient, expected: list[str], timeout: float = 60) -> None:
    """Every serial in ``expected`` reaches the server, each received once."""
    wanted = set(expected)

    def arrived() -> list[dict[str, Any]] | None:
        got = [r for r in server.reports() if r["sn"] in wanted]
        return got if {r["sn"] for r in got} == wanted else None

    reports = wait_until(arrived, timeout, 0.2, message=f"{len(wanted)} reports on the server")
    assert reports is not None
    assert sorted(r["sn"] for r in reports) == sorted(wanted)
    assert all(r["times_received"] == 1 for r in reports), reports


def pending(path: Path, name: str) -> int | None:
    (inst,) = [i for i in list_instances(path) if i.name == name]
    return inst.pending


def test_restarting_one_of_three_leaves_the_others_running_and_uploading(
    tmp_path: Path, standin: StandinClient, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    names = ["st-1", "st-2", "st-3"]
    path = stations(tmp_path, standin, names)
    sup = supervisor_factory(path)
    first = sup.wait_running(*names)

    dropped: dict[str, list[str]] = {"st-1": [], "st-3": []}
    stop = threading.Event()

    def feed() -> None:  # st-1 and st-3 receive files the whole time
        i = 0
        while not stop.is_set():
            for name, serials in dropped.items():
                sn = f"{name.upper()}-{i:04d}"
                drop(tmp_path / name / "in", sn)
                serials.append(sn)
            i += 1
            stop.wait(0.1)  # the scenario: a steady file rate

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        wait_until(lambda: sns(standin, "ST-1-") and sns(standin, "ST-3-"), 30, 0.1)
        before = {p: len(sns(standin, p)) for p in ("ST-1-", "ST-3-")}
        result = SupervisorControl(path).restart("st-2")
        during = {p: len(sns(standin, p)) for p in ("ST-1-", "ST-3-")}
    finally:
        stop.set()
        feeder.join()
    st2 = result["st-2"]
    assert result.ok, result
    assert st2.state == "running" and st2.previous_pid == first["st-2"]["pid"]
    assert st2.pid not in (None, first["st-2"]["pid"])
    assert [i.name for i in result] == ["st-2"]
    for name in ("st-1", "st-3"):  # same processes, never restarted, uploading throughout
        record = sup.instance(name)
        assert record["pid"] == first[name]["pid"] and record["restarts"] == 0
    assert all(during[p] > before[p] for p in before), (before, during)
    exactly_once(standin, dropped["st-1"] + dropped["st-3"])
    # and the new st-2 worker uploads too
    drop(tmp_path / "st-2" / "in", "ST-2-AFTER")
    exactly_once(standin, ["ST-2-AFTER"])


def test_a_stopped_station_fills_up_untouched_and_start_drains_it(
    tmp_path: Path, standin: StandinClient, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    path = stations(tmp_path, standin, ["st-1", "st-2"])
    sup = supervisor_factory(path)
    first = sup.wait_running("st-1", "st-2")
    stopped = by_name(cli_json("stop", "st-1", registry=path))["st-1"]
    assert stopped["state"] == "stopped" and stopped["pid"] is None

    inbox = tmp_path / "st-1" / "in"
    waiting = [f"WAIT-{i:03d}" for i in range(25)]
    contents = {sn: drop(inbox, sn).read_bytes() for sn in waiting}
    # st-2 runs on and uploads: by the time its files are on the server, a
    # running st-1 would have taken its own long ago
    drop(tmp_path / "st-2" / "in", "OTHER-1")
    drop(tmp_path / "st-2" / "in", "OTHER-2")
    exactly_once(standin, ["OTHER-1", "OTHER-2"])
    sup.wait_status_writes(4)  # and the supervisor looked at st-1 4 more times, leaving it
    assert sorted(p.name for p in inbox.glob("*.json")) == sorted(f"{sn}.json" for sn in waiting)
    assert all((inbox / f"{sn}.json").read_bytes() == data for sn, data in contents.items())
    assert sns(standin, "WAIT-") == []
    assert sup.instance("st-1")["pid"] is None
    assert sup.instance("st-2")["pid"] == first["st-2"]["pid"]

    started = by_name(cli_json("start", "st-1", registry=path))["st-1"]
    assert started["state"] == "running" and started["pid"] and started["done"]
    exactly_once(standin, waiting)
    wait_until(lambda: not list(inbox.glob("*.json")), 30, message="st-1's inbox drained")


def test_pause_holds_uploads_and_resume_delivers_each_once(
    tmp_path: Path, standin: StandinClient, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    path = stations(tmp_path, standin, ["st-1", "st-2"])
    sup = supervisor_factory(path)
    first = sup.wait_running("st-1", "st-2")
    control = SupervisorControl(path)
    paused = control.pause("st-1")
    assert paused.ok and paused["st-1"].state == "paused"
    assert paused["st-1"].uploads == "paused"  # confirmed by the worker itself

    held = [f"HELD-{i:03d}" for i in range(30)]
    for sn in held:
        drop(tmp_path / "st-1" / "in", sn)
    drop(tmp_path / "st-2" / "in", "FREE-1")
    # st-1 still watches, converts and queues; it only does not upload
    wait_until(lambda: pending(path, "st-1") == len(held), 45, 0.2, message="all 30 queued")
    wait_until(lambda: not list((tmp_path / "st-1" / "in").glob("*.json")), 30)
    exactly_once(standin, ["FREE-1"])  # st-2 uploads meanwhile
    assert sns(standin, "HELD-") == []

    # paused survives a supervisor restart, and a restarted worker uploads nothing
    assert sup.terminate() == 0
    sup = supervisor_factory(path)
    sup.wait_state("st-1", "paused", timeout=45)
    sup.wait_running("st-2")
    wait_until(
        lambda: pending(path, "st-1") == len(held),
        30,
        message=lambda: (
            f"st-1 reports again: pending {pending(path, 'st-1')}, "
            f"on the server {len(sns(standin, 'HELD-'))}"
        ),
    )
    drop(tmp_path / "st-2" / "in", "FREE-2")
    exactly_once(standin, ["FREE-2"])
    assert sns(standin, "HELD-") == []

    resumed = SupervisorControl(path).resume("st-1")
    assert resumed.ok and resumed["st-1"].state == "running" and not resumed["st-1"].paused
    assert resumed["st-1"].uploads not in (None, "paused")
    exactly_once(standin, held)
    wait_until(lambda: pending(path, "st-1") == 0, 30, message="st-1's queue empty")
    assert first["st-2"]["pid"] != sup.instance("st-2")["pid"]  # a new supervisor's worker


@pytest.mark.skipif(sys.platform == "win32", reason="raw Unix-socket clients")
def test_wrong_key_and_random_bytes_leave_the_supervisor_running_and_answering(
    tmp_path: Path, standin: StandinClient, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    path = stations(tmp_path, standin, ["st-1", "st-2"])
    sup = supervisor_factory(path)
    first = sup.wait_running("st-1", "st-2")
    endpoint = ep.read_endpoint(tmp_path / ".pywats")
    assert endpoint is not None and endpoint.pid == sup.pid

    with pytest.raises(AuthenticationError):
        Client(endpoint.address, family=endpoint.family, authkey=os.urandom(ep.KEY_BYTES))
    log = tmp_path / "logs" / "supervisor.log"
    wait_until(lambda: "wrong key" in log.read_text(), 15, message="the refusal logged")

    rng = random.Random(12)
    for _ in range(3):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(endpoint.address)
            try:
                sock.sendall(rng.randbytes(1000))
            except OSError:
                pass  # the supervisor may hang up mid-way: that is allowed

    assert sup.proc.poll() is None, sup.text()
    info = SupervisorControl(path).ping()
    assert info.pid == sup.pid
    drop(tmp_path / "st-1" / "in", "STILL-FINE")
    exactly_once(standin, ["STILL-FINE"])
    records = sup.instances()
    assert {n: records[n]["pid"] for n in records} == {n: first[n]["pid"] for n in first}
