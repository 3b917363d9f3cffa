"""SupervisorControl against a fake supervisor: results, waiting, and every typed error."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

import pywats_client
from pywats_client.control import (
    ControlRefused,
    ControlUnavailable,
    SupervisorControl,
    SupervisorNotRunning,
    UnknownInstance,
)
from pywats_client.control import _endpoint as ep
from pywats_client.control._server import ControlServer
from pywats_client.errors import ConfigError, FatalError, RetryableError
from pywats_client.supervisor import State
from tests._control_fakes import FakeSupervisor, serving, write_registry
from tests.helpers import refuse_reading

NAMES = ["st-1", "st-2", "st-3"]


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return write_registry(tmp_path, [*NAMES, "off"], disabled=("off",))


@pytest.fixture
def fake(registry: Path) -> FakeSupervisor:
    return FakeSupervisor(registry, [*NAMES, "off"], disabled=("off",))


@pytest.fixture
def server(fake: FakeSupervisor, tmp_path: Path) -> Iterator[ControlServer]:
    with serving(fake, tmp_path / ".pywats", io_timeout=1.0) as srv:
        yield srv


@pytest.fixture
def control(server: ControlServer, registry: Path) -> SupervisorControl:
    return SupervisorControl(registry, timeout=5)


def test_the_gui_names_are_exported_from_the_package() -> None:
    assert pywats_client.SupervisorControl is SupervisorControl
    assert pywats_client.UnknownInstance is UnknownInstance
    assert {"SupervisorNotRunning", "ControlRefused", "list_instances"} <= set(
        pywats_client.__all__
    )


def test_errors_are_classified_by_what_the_caller_must_do() -> None:
    assert issubclass(SupervisorNotRunning, FatalError)
    assert issubclass(UnknownInstance, ConfigError)
    assert issubclass(ControlRefused, FatalError)
    assert issubclass(ControlUnavailable, RetryableError)


def test_ping_names_the_supervisor(control: SupervisorControl, registry: Path) -> None:
    info = control.ping()
    assert info.pid == os.getpid()
    assert info.registry == registry
    assert info.instances == (*NAMES, "off")
    assert control.is_running()


def test_restart_waits_for_a_new_pid_and_touches_no_other(
    control: SupervisorControl, fake: FakeSupervisor
) -> None:
    before = {n: fake.record(n)["pid"] for n in NAMES}
    result = control.restart("st-2")
    assert result.ok
    st2 = result["st-2"]
    assert st2.state is State.RUNNING
    assert st2.previous_pid == before["st-2"]
    assert st2.pid not in (None, before["st-2"])
    assert [i.name for i in result] == ["st-2"]
    assert fake.calls == [("restart", "st-2")]
    assert {n: fake.record(n)["pid"] for n in ("st-1", "st-3")} == {
        n: before[n] for n in ("st-1", "st-3")
    }


def test_stop_then_start(control: SupervisorControl) -> None:
    stopped = control.stop("st-1", "st-3")
    assert stopped.ok
    assert [(i.name, i.state, i.pid) for i in stopped] == [
        ("st-1", State.STOPPED, None),
        ("st-3", State.STOPPED, None),
    ]
    started = control.start("st-1")
    assert started.ok and started["st-1"].state is State.RUNNING and started["st-1"].pid


def test_no_wait_returns_the_state_the_command_left(
    control: SupervisorControl, fake: FakeSupervisor
) -> None:
    fake.settle = 5.0
    result = control.stop("st-1", wait=0)
    assert not result.ok
    assert result["st-1"].state is State.STOPPING
    assert result["st-1"].note == "requested; now stopping (not waited for)"


def test_a_worker_that_does_not_come_up_in_time_is_reported(
    control: SupervisorControl, fake: FakeSupervisor
) -> None:
    fake.settle = 5.0
    result = control.restart("st-1", wait=0.3)
    assert not result.ok
    assert "still stopping after 0.3 s" in (result["st-1"].note or "")
    assert "pywats-client logs st-1" in (result["st-1"].note or "")


def test_a_worker_that_crashes_after_start_is_reported_without_waiting_it_out(
    control: SupervisorControl, fake: FakeSupervisor
) -> None:
    fake.crash_on_start.add("st-1")
    control.stop("st-1")
    result = control.start("st-1", wait=30)
    assert not result.ok
    assert result["st-1"].state is State.BACKOFF
    assert "worker exited" in (result["st-1"].note or "")


def test_pause_is_done_when_the_worker_confirms(
    control: SupervisorControl, fake: FakeSupervisor
) -> None:
    result = control.pause("st-1")
    assert result.ok
    assert result["st-1"].state is State.PAUSED and result["st-1"].paused
    assert result["st-1"].uploads == "paused"
    assert fake.record("st-1")["snapshot"] == {"uploads": "paused"}
    resumed = control.resume("st-1")
    assert resumed.ok and not resumed["st-1"].paused
    assert fake.record("st-1")["snapshot"] == {"uploads": "idle"}


def test_pause_of_a_stopped_instance_applies_when_it_starts(control: SupervisorControl) -> None:
    control.stop("st-2")
    result = control.pause("st-2")
    assert result.ok
    assert result["st-2"].note == "not running; applies when it starts"
    started = control.start("st-2")
    assert started["st-2"].state is State.PAUSED


def test_all_skips_disabled_instances_on_start(
    control: SupervisorControl, fake: FakeSupervisor
) -> None:
    control.stop(all_instances=True)
    result = control.start(all_instances=True)
    assert result.ok
    assert [i.name for i in result] == [*NAMES, "off"]
    assert result["off"].note == "disabled in the registry; skipped"
    assert ("start", "off") not in fake.calls


def test_starting_a_disabled_instance_by_name_is_not_done(control: SupervisorControl) -> None:
    result = control.start("off", "st-1")
    assert not result.ok
    assert result["st-1"].done
    assert result["off"].note == (
        "instance 'off' is disabled in the registry; set enabled = true first"
    )


def test_unknown_names_change_nothing_and_list_the_known(
    control: SupervisorControl, fake: FakeSupervisor, registry: Path
) -> None:
    with pytest.raises(UnknownInstance) as info:
        control.stop("st-1", "st-9", "nope")
    assert info.value.names == ("st-9", "nope")
    assert info.value.known == ("off", "st-1", "st-2", "st-3")
    assert "known: off, st-1, st-2, st-3" in str(info.value)
    assert str(registry) in str(info.value)
    assert fake.calls == []


def test_names_or_all_not_both(control: SupervisorControl) -> None:
    with pytest.raises(ValueError, match="not both"):
        control.stop("st-1", all_instances=True)
    with pytest.raises(ValueError, match="all_instances"):
        control.stop()


def test_reload_reports_or_refuses(control: SupervisorControl, fake: FakeSupervisor) -> None:
    result = control.reload()
    assert result.command == "reload" and [i.name for i in result] == [*NAMES, "off"]
    fake.reload_problem = "registry change not applied: instances.toml: not valid TOML"
    with pytest.raises(ControlRefused, match="not valid TOML"):
        control.reload()


def test_a_shutting_down_supervisor_refuses(
    control: SupervisorControl, fake: FakeSupervisor
) -> None:
    fake.stopping = True
    with pytest.raises(ControlRefused, match="shutting down"):
        control.restart("st-1")
    assert fake.calls == []


def test_a_stuck_supervisor_gives_control_unavailable_in_time(
    server: ControlServer, registry: Path, fake: FakeSupervisor
) -> None:
    fake.block.set()
    control = SupervisorControl(registry, timeout=0.5)
    with pytest.raises(ControlUnavailable, match=r"did not answer within 0\.5 s"):
        control.ping()
    assert not control.is_running()


def test_a_stuck_supervisor_on_windows_gives_control_unavailable_too(
    server: ControlServer, registry: Path, fake: FakeSupervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipe read aborted by CancelIoEx ends in RuntimeError in CPython's PipeConnection."""
    real = Connection._recv_bytes

    def aborted_as_on_windows(self: Connection, maxsize: int | None = None) -> Any:
        try:
            return real(self, maxsize)
        except (OSError, EOFError):
            raise RuntimeError("shouldn't get here; expected KeyboardInterrupt") from None

    monkeypatch.setattr(Connection, "_recv_bytes", aborted_as_on_windows)
    fake.block.set()
    control = SupervisorControl(registry, timeout=0.5)
    with pytest.raises(ControlUnavailable, match=r"did not answer within 0\.5 s"):
        control.ping()


def test_no_supervisor(registry: Path) -> None:
    control = SupervisorControl(registry)
    with pytest.raises(SupervisorNotRunning) as info:
        control.restart("st-1")
    assert f"pywats-client supervise --registry {registry}" in str(info.value)
    assert not control.is_running()


def test_a_state_folder_this_user_may_not_read_is_refused_not_a_bare_error(
    registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status = tmp_path / ".pywats" / "status.json"
    status.parent.mkdir()
    status.write_text("{}")
    refuse_reading(monkeypatch, status)
    with pytest.raises(ControlRefused, match="permission denied; run this as the user"):
        SupervisorControl(registry).restart("st-1")


@pytest.mark.skipif(sys.platform == "win32", reason="writes a Unix-socket address")
def test_a_vanished_supervisor_is_not_running(registry: Path, tmp_path: Path) -> None:
    state = tmp_path / ".pywats"
    state.mkdir()
    (state / ep.ADDR_NAME).write_text(
        json.dumps({"address": str(state / "gone.sock"), "family": "AF_UNIX", "pid": 2**22 + 7})
    )
    (state / ep.KEY_NAME).write_bytes(os.urandom(32))
    with pytest.raises(SupervisorNotRunning, match="is gone"):
        SupervisorControl(registry).ping()


def test_an_unreadable_or_broken_key_is_refused(control: SupervisorControl, tmp_path: Path) -> None:
    key = tmp_path / ".pywats" / ep.KEY_NAME
    key.write_bytes(b"short")
    with pytest.raises(ControlRefused, match="restart the supervisor"):
        control.ping()
    if hasattr(os, "geteuid") and os.geteuid() != 0:  # root reads anything
        key.write_bytes(os.urandom(32))
        key.chmod(0)
        with pytest.raises(ControlRefused, match="permission denied"):
            control.ping()
