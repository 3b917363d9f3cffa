"""Live reload: registry and config edits touch only the instances concerned."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pywats_client.errors import RegistryError
from pywats_client.supervisor import list_instances
from tests.e2e._supervisor import (
    SupervisorRun,
    alive,
    drop,
    registry,
    station,
    supervisor_runs,
)
from tests.helpers import run_cli, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def supervisor_factory() -> Iterator[Callable[..., SupervisorRun]]:
    yield from supervisor_runs()


def pids(sup: SupervisorRun) -> dict[str, int | None]:
    return {name: r.get("pid") for name, r in sup.instances().items()}


def pids_and_states(sup: SupervisorRun) -> dict[str, tuple[int | None, str]]:
    """A worker being restarted keeps its pid while it stops: compare states too."""
    return {name: (r.get("pid"), r["state"]) for name, r in sup.instances().items()}


def test_registry_and_config_edits_apply_to_the_changed_instances_only(
    tmp_path: Path, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    for name in ("st-1", "st-2", "st-3"):
        station(tmp_path, name)
    path = registry(tmp_path, ["st-1", "st-2"])
    sup = supervisor_factory(path)
    sup.wait_running("st-1", "st-2")
    before = pids(sup)

    registry(tmp_path, ["st-1", "st-2", "st-3"])  # add
    sup.wait_running("st-3", timeout=30)
    assert {k: v for k, v in pids(sup).items() if k != "st-3"} == before

    station(tmp_path, "st-2", ready_after=0.2)  # config change: st-2 restarts, alone
    sup.wait(
        lambda i: (
            i["st-2"]["pid"] not in (None, before["st-2"]) and i["st-2"]["state"] == "running"
        ),
        timeout=30,
        what="st-2 restarted with its new config",
    )
    assert sup.instance("st-2")["restarts"] == 1
    assert sup.instance("st-1")["pid"] == before["st-1"]
    st3 = sup.instance("st-3")["pid"]

    drop(tmp_path / "st-1" / "in", "SN-LEFT")  # offline: it stays queued
    sup.wait(lambda i: (i["st-1"].get("snapshot") or {}).get("pending") == 1, 30, "queued")
    registry(tmp_path, ["st-2", "st-3"], disabled=("st-3",))  # remove st-1, disable st-3
    sup.wait(lambda i: "st-1" not in i and i["st-3"]["state"] == "disabled", 30, "removal")
    wait_until(lambda: not alive(before["st-1"]) and not alive(st3), 15, message="workers gone")
    assert sup.instance("st-3")["pid"] is None
    # the operator is told what the removed station left unsent, and how to send it
    log = tmp_path / "logs" / "supervisor.log"
    wait_until(lambda: "not yet uploaded" in log.read_text(), 15, message="the warning")
    warning = " ".join(line for line in log.read_text().splitlines() if "not yet uploaded" in line)
    assert "st-1: removed from the registry with 1 report(s)" in warning
    assert "pywats-client run --config" in warning

    # an invalid edit is reported and changes nothing
    steady = pids_and_states(sup)
    path.write_text(path.read_text() + "\n[[instance]]\nname = 'bad name!'\n")
    doc = wait_until(
        lambda: (d := sup.document()) and d["supervisor"]["last_error"] and d,
        20,
        message="registry error reported",
    )
    assert "not applied" in doc["supervisor"]["last_error"]
    sup.wait_status_writes(4)  # the supervisor ran on; it restarted nothing
    assert pids_and_states(sup) == steady
    # ...and the operator is not blind meanwhile: status shows what still runs
    shown = run_cli("status", "--registry", str(path))
    assert shown.returncode == 2, shown.stderr
    out = " ".join(shown.stdout.split())
    assert "bad name!" in out and "runs on with the last valid version" in out
    assert "st-2" in out and "running" in out and "Traceback" not in shown.stderr
    as_json = json.loads(run_cli("status", "--registry", str(path), "--json").stdout)
    assert "bad name!" in as_json["registry_error"]
    assert [i["name"] for i in as_json["instances"]] == ["st-2", "st-3"]
    with pytest.raises(RegistryError):
        list_instances(path)  # the documented contract stays


def test_a_refused_config_edit_stays_flagged_until_the_config_is_fixed(
    tmp_path: Path, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    """The worker runs on with the old config; the next restart would be fatal."""
    station(tmp_path, "st-1")
    path = registry(tmp_path, ["st-1"], stable_after=8.0)
    sup = supervisor_factory(path)
    first = sup.wait_running("st-1")["st-1"]["pid"]
    station(tmp_path, "st-1", max_queue_size=-3)  # refused before the run counts as stable
    record = sup.wait(
        lambda i: i["st-1"] if i["st-1"].get("config_problem") else None, 30, "the refusal"
    )
    assert "max_queue_size" in record["config_problem"] and record["pid"] == first
    # a stable run clears last_error, as it clears an old crash; the flag stays
    sup.wait(lambda i: i["st-1"]["last_error"] is None, 30, "last_error cleared")
    assert sup.instance("st-1")["config_problem"] == record["config_problem"]
    checked = run_cli("status", "--registry", str(path), "--check")
    assert checked.returncode == 1, checked.stdout
    assert "max_queue_size" in checked.stdout and "next restart" in checked.stdout

    station(tmp_path, "st-1", ready_after=0.2)  # fixed: applied, the flag goes
    sup.wait(
        lambda i: i["st-1"]["pid"] not in (None, first) and i["st-1"]["state"] == "running",
        30,
        "restarted with the fixed config",
    )
    assert sup.instance("st-1")["config_problem"] is None


def test_a_renamed_station_keeps_its_queue_without_a_stranded_warning(
    tmp_path: Path, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    station(tmp_path, "st-1")
    path = registry(tmp_path, ["st-1"])
    sup = supervisor_factory(path)
    sup.wait_running("st-1")
    drop(tmp_path / "st-1" / "in", "SN-KEPT")  # offline: it stays queued
    sup.wait(lambda i: (i["st-1"].get("snapshot") or {}).get("pending") == 1, 30, "queued")
    text = path.read_text().replace('name = "st-1"', 'name = "line-1"')  # same config
    path.write_text(text)
    sup.wait(
        lambda i: "st-1" not in i and (i["line-1"].get("snapshot") or {}).get("pending") == 1,
        60,
        "the new name runs the same queue",
    )
    sup.wait_status_writes(4)
    log = (tmp_path / "logs" / "supervisor.log").read_text()
    assert "st-1: removed from the registry" in log
    assert "not yet uploaded" not in log


@pytest.mark.skipif(sys.platform == "win32", reason="SIGHUP is POSIX-only")
def test_sighup_reloads_without_restarting_unchanged_instances(
    tmp_path: Path, supervisor_factory: Callable[..., SupervisorRun]
) -> None:
    for name in ("st-1", "st-2"):
        station(tmp_path, name)
    sup = supervisor_factory(registry(tmp_path, ["st-1", "st-2"]))
    sup.wait_running("st-1", "st-2")
    before = pids_and_states(sup)
    os.kill(sup.pid, signal.SIGHUP)
    wait_until(
        lambda: "registry changed: reloading" in (tmp_path / "logs" / "supervisor.log").read_text(),
        15,
        message="reload logged",
    )
    sup.wait_status_writes(4)  # the reload is applied at once; then the supervisor ran on
    assert pids_and_states(sup) == before
    assert {r["restarts"] for r in sup.instances().values()} == {0}
    data = json.loads((tmp_path / ".pywats" / "status.json").read_text())
    assert data["supervisor"]["last_error"] is None
