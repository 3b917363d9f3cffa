"""list_instances() and `pywats-client status`, with and without a running supervisor."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

import pywats_client
from pywats_client import _fsutil
from pywats_client._fsutil import iter_temp_files
from pywats_client.cli import main
from pywats_client.cli._output import console
from pywats_client.cli.status import format_duration
from pywats_client.errors import FatalError, RegistryError
from pywats_client.supervisor import InstanceStatus, State, list_instances, status_report
from pywats_client.supervisor._states import CONFIG_NOT_APPLIED
from pywats_client.supervisor._statusfile import STATUS_NAME, read_status, write_status
from tests.helpers import refuse_reading, run_cli, run_fresh, wait_until

TOKEN = "c3VwZXItc2VjcmV0LXRva2Vu"


def make_registry(tmp_path: Path, *, disabled: bool = False, broken: bool = False) -> Path:
    for name in ("st-1", "st-2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(
            json.dumps(
                {
                    "instance_name": name,
                    "queue_path": "queue",
                    "watch_paths": ["in"],
                    "api_token": TOKEN,
                }
            )
        )
    if broken:
        (tmp_path / "st-2" / "config.json").write_text('{"queue_path": 5, "nope": 1}')
    text = '[supervisor]\nlog_dir = "logs"\n'
    for name in ("st-1", "st-2"):
        enabled = "false" if disabled and name == "st-2" else "true"
        text += f'[[instance]]\nname = "{name}"\nconfig = "{name}/config.json"\n'
        text += f"enabled = {enabled}\n"
    path = tmp_path / "instances.toml"
    path.write_text(text)
    return path


def queue_files(queue: Path, state: str, n: int) -> None:
    folder = queue / state
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{i:04d}.json").write_text("{}")
    (folder / ".hidden.json").write_text("{}")
    (folder / "leftover.pywats-tmp").write_text("")


def status_document(*, pid: int, create_time: float | None, updated_at: float) -> dict[str, Any]:
    return {
        "format": 1,
        "supervisor": {
            "pid": pid,
            "create_time": create_time,
            "started_at": updated_at - 100,
            "updated_at": updated_at,
            "registry": "x",
            "metrics_url": None,
            "last_error": None,
            "exited": False,
        },
        "instances": [
            {
                "name": "st-1",
                "state": "running",
                "enabled": True,
                "pid": 4242,
                "started_at": updated_at - 50,
                "uptime_s": 50.0,
                "restarts": 2,
                "last_exit": -9,
                "last_error": "worker was killed by SIGKILL",
                "last_heartbeat_at": updated_at - 0.5,
                "heartbeat_age_s": 0.5,
                "next_restart_at": None,
                "rss": 40_000_000,
                "cpu": 0.3,
                "snapshot": {
                    "pending": 7,
                    "failed": 1,
                    "converted": 10,
                    "errored": 2,
                    "uploaded": 9,
                    "connection": "connected",
                    "uploads": "idle",
                },
            },
            {
                "name": "st-2",
                "state": "crash-looping",
                "enabled": True,
                "pid": None,
                "started_at": None,
                "uptime_s": None,
                "restarts": 9,
                "last_exit": 1,
                "last_error": "boom",
                "last_heartbeat_at": None,
                "heartbeat_age_s": None,
                "next_restart_at": updated_at + 30,
                "rss": None,
                "cpu": None,
                "snapshot": None,
            },
        ],
    }


def test_without_supervisor_instances_are_not_running_with_folder_counts(tmp_path: Path) -> None:
    registry = make_registry(tmp_path, disabled=True)
    queue_files(tmp_path / "st-1" / "queue", "pending", 3)
    queue_files(tmp_path / "st-1" / "queue", "failed", 2)
    one, two = list_instances(registry)
    assert isinstance(one, InstanceStatus)
    assert (one.name, one.state, one.enabled, one.supervised) == (
        "st-1",
        "not-running",
        True,
        False,
    )
    assert one.state is State.NOT_RUNNING
    assert (one.pending, one.failed) == (3, 2)
    assert one.pid is None and one.heartbeat_age_s is None and one.snapshot is None
    assert one.log_path == tmp_path / "logs" / "st-1.log"
    assert one.queue_path == tmp_path / "st-1" / "queue"
    assert two.state is State.DISABLED
    assert (two.pending, two.failed) == (0, 0)  # no queue folder yet


def test_bad_instance_config_shows_in_that_instance_only(tmp_path: Path) -> None:
    registry = make_registry(tmp_path, broken=True)
    one, two = list_instances(str(registry))
    assert one.last_error is None
    assert two.last_error and "config.json" in two.last_error
    assert two.pending is None  # its queue_path is not a path either


def test_a_station_with_an_invalid_config_still_shows_its_queued_reports(
    tmp_path: Path,
) -> None:
    """Fatal is when an operator most needs to know what is waiting in its queue."""
    registry = make_registry(tmp_path)
    (tmp_path / "st-2" / "config.json").write_text(
        json.dumps({"instance_name": "st-2", "queue_path": "q2", "max_queue_size": -3})
    )
    queue_files(tmp_path / "st-2" / "q2", "pending", 3)
    queue_files(tmp_path / "st-2" / "q2", "failed", 2)
    _, two = list_instances(str(registry))
    assert two.last_error and "max_queue_size" in two.last_error
    assert (two.pending, two.failed) == (3, 2)
    assert two.queue_path == tmp_path / "st-2" / "q2"


def park(watch: Path, *names: str) -> Path:
    """Source files parked in ``watch``'s Error folder as the intake leaves them."""
    error = watch / "Error"
    error.mkdir(parents=True, exist_ok=True)
    for name in names:
        (error / name).write_text("bad")
        (error / f"{name}.error.txt").write_text("reason: no serial")
    return error


def test_files_parked_in_error_folders_are_counted_without_a_supervisor(
    tmp_path: Path,
) -> None:
    """Results that did not convert are not in WATS: the status says how many, and where."""
    registry = make_registry(tmp_path)
    config = tmp_path / "st-1" / "config.json"
    settings = json.loads(config.read_text())
    settings["watch_paths"] = ["in-a", "in-b", "in-c"]
    config.write_text(json.dumps(settings))
    park(tmp_path / "st-1" / "in-a", "x.csv")
    park(tmp_path / "st-1" / "in-b", "y.csv", "z.csv")
    park(tmp_path / "st-1" / "in-c")  # an Error folder with nothing in it
    one, two = list_instances(registry)
    a, b = (str(tmp_path / "st-1" / f"in-{x}" / "Error") for x in "ab")
    assert (one.in_error, one.error_folders) == (3, {a: 1, b: 2})
    assert (two.in_error, two.error_folders) == (None, {})  # no watch folder: not known
    (tmp_path / "st-2" / "in").mkdir()
    assert list_instances(registry)[1].in_error == 0  # no Error folder yet: none failed
    assert json.loads(json.dumps(one.to_dict()))["error_folders"] == {a: 1, b: 2}

    (tmp_path / "st-2" / "config.json").write_text('{"queue_path": 5}')
    assert list_instances(registry)[1].in_error is None  # no config: unknown, not 0


def test_a_running_station_counts_its_parked_files_itself(tmp_path: Path) -> None:
    """With a supervisor, status reads the station's count: it never lists a share itself."""
    registry = make_registry(tmp_path)
    (tmp_path / ".pywats").mkdir()
    me = psutil.Process()
    doc = status_document(pid=os.getpid(), create_time=me.create_time(), updated_at=time.time())
    doc["instances"][0]["snapshot"] |= {"in_error": 4, "error_folders": {"D:/in/Error": 4}}
    assert write_status(tmp_path / ".pywats" / STATUS_NAME, doc)
    park(tmp_path / "st-1" / "in", "on-disk.csv")  # not what a running station reports
    one, _ = list_instances(registry)
    assert (one.in_error, one.error_folders) == (4, {"D:/in/Error": 4})


def test_bad_registry_raises_registry_error(tmp_path: Path) -> None:
    path = tmp_path / "instances.toml"
    path.write_text("[[instance]]\nname = 'bad name!'\nconfig = 'x.json'\n")
    with pytest.raises(RegistryError, match=r"instances\.toml"):
        list_instances(path)


def test_live_supervisor_status_is_read_and_aged_to_now(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    me = psutil.Process()
    updated = time.time() - 2.0
    state_dir = tmp_path / ".pywats"
    state_dir.mkdir()
    doc = status_document(pid=os.getpid(), create_time=me.create_time(), updated_at=updated)
    assert write_status(state_dir / STATUS_NAME, doc)
    report = status_report(registry)
    assert report.supervisor.running and report.supervisor.pid == os.getpid()
    one, two = report.instances
    assert one.supervised and one.state is State.RUNNING and one.pid == 4242
    assert one.restarts == 2 and one.last_exit == -9
    assert one.heartbeat_age_s is not None and 2.4 <= one.heartbeat_age_s < 10
    assert one.uptime_s is not None and 52 <= one.uptime_s < 60
    assert (one.pending, one.failed, one.uploaded, one.converted) == (7, 1, 9, 10)
    assert one.connection == "connected"
    assert one.snapshot is not None and one.snapshot.errored == 2
    assert two.state == "crash-looping" and two.last_error == "boom"
    assert two.next_restart_at is not None
    assert two.uptime_s is None and two.heartbeat_age_s is None
    assert (two.pending, two.failed) == (0, 0)  # no snapshot: counted from folders


@pytest.mark.parametrize("stale", ["dead-pid", "reused-pid", "exited"])
def test_stale_status_file_means_not_running(tmp_path: Path, stale: str) -> None:
    registry = make_registry(tmp_path)
    state_dir = tmp_path / ".pywats"
    state_dir.mkdir()
    me = psutil.Process()
    if stale == "dead-pid":
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        doc = status_document(pid=proc.pid, create_time=None, updated_at=time.time())
    elif stale == "reused-pid":  # our pid, but another process start time
        doc = status_document(
            pid=os.getpid(), create_time=me.create_time() - 500, updated_at=time.time()
        )
    else:
        doc = status_document(pid=os.getpid(), create_time=me.create_time(), updated_at=time.time())
        doc["supervisor"]["exited"] = True
    doc["instances"][1]["last_error_at"] = time.time() - 60
    write_status(state_dir / STATUS_NAME, doc)
    report = status_report(registry)
    assert not report.supervisor.running
    assert [i.state for i in report.instances] == [State.NOT_RUNNING, State.NOT_RUNNING]
    assert all(i.pid is None and not i.supervised for i in report.instances)
    # a GUI tells a crash from a stop, and still sees what was wrong, and since when
    one, two = report.instances
    assert one.last_error == "worker was killed by SIGKILL" and one.last_error_at is None
    assert two.last_error == "boom" and two.last_error_at is not None
    assert 50 < time.time() - two.last_error_at.timestamp() < 120
    if stale == "exited":
        assert report.supervisor.last_error is None
    else:
        assert report.supervisor.last_error is not None
        assert "ended without shutting down" in report.supervisor.last_error
        assert str(doc["supervisor"]["pid"]) in report.supervisor.last_error


def test_the_newest_of_the_process_error_and_the_station_error_shows(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    me = psutil.Process()
    now = time.time()
    state_dir = tmp_path / ".pywats"
    state_dir.mkdir()
    doc = status_document(pid=os.getpid(), create_time=me.create_time(), updated_at=now)
    record = doc["instances"][0]
    record["last_error"], record["last_error_at"] = "no heartbeat for 31.0 s: worker hung", now - 5
    record["snapshot"].update(last_error="bad.json: not valid JSON", last_error_at=now - 50)
    write_status(state_dir / STATUS_NAME, doc)
    one = list_instances(registry)[0]
    assert one.last_error == "no heartbeat for 31.0 s: worker hung"
    assert one.last_error_at is not None and round(one.last_error_at.timestamp()) == round(now - 5)
    record["snapshot"]["last_error_at"] = now - 1  # then the station's own error came after
    write_status(state_dir / STATUS_NAME, doc)
    one = list_instances(registry)[0]
    assert one.last_error == "bad.json: not valid JSON"


@pytest.mark.e2e
def test_a_station_run_by_hand_shows_as_running_unsupervised(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    config = tmp_path / "st-1" / "config.json"
    station = subprocess.Popen(
        [sys.executable, "-m", "pywats_client", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: list_instances(registry)[0].state is State.RUNNING,
            60,
            message="the hand-run station shows as running",
        )
        one, two = list_instances(registry)
        assert (one.pid, one.supervised) == (station.pid, False)
        assert two.state is State.NOT_RUNNING and two.pid is None
    finally:
        station.kill()
        station.wait()
    assert list_instances(registry)[0].state is State.NOT_RUNNING  # its pid file is stale now


def test_status_file_garbage_or_other_format_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / STATUS_NAME
    path.write_text("{not json")
    assert read_status(path) is None
    path.write_text(json.dumps({"format": 99}))
    assert read_status(path) is None
    assert read_status(tmp_path / "missing.json") is None


def test_no_secret_in_status_objects(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    for status in list_instances(registry):
        assert TOKEN not in repr(status)
        assert TOKEN not in json.dumps(status.to_dict())


def test_to_dict_is_json_ready(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    (tmp_path / ".pywats").mkdir()
    me = psutil.Process()
    doc = status_document(pid=os.getpid(), create_time=me.create_time(), updated_at=time.time())
    write_status(tmp_path / ".pywats" / STATUS_NAME, doc)
    data = json.loads(json.dumps(list_instances(registry)[0].to_dict()))
    assert data["state"] == "running"
    assert data["snapshot"]["pending"] == 7
    assert data["started_at"].endswith("+00:00")


def test_package_exports_and_light_import() -> None:
    assert pywats_client.list_instances is list_instances
    assert pywats_client.InstanceStatus is InstanceStatus
    assert isinstance(pywats_client.__version__, str)
    code = (
        "import sys, threading, multiprocessing.process as mp\n"
        "import pywats_client\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "assert not mp.active_children()\n"
        "heavy = [m for m in ('pywats_client.supervisor', 'pydantic', 'psutil', 'rich', 'httpx')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(pywats_client.__version__)\n"
    )
    assert run_fresh(code).strip() == pywats_client.__version__


# --- the command -----------------------------------------------------------------------


def test_cli_status_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = make_registry(tmp_path)
    queue_files(tmp_path / "st-1" / "queue", "pending", 4)
    assert main(["status", "--registry", str(registry)]) == 0
    out = capsys.readouterr().out
    assert "no supervisor running" in out
    assert "st-1" in out and "st-2" in out and "not-running" in out
    assert main(["status", "--registry", str(registry), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["supervisor"]["running"] is False
    assert [i["name"] for i in data["instances"]] == ["st-1", "st-2"]
    assert data["instances"][0]["pending"] == 4
    assert TOKEN not in json.dumps(data)

    park(tmp_path / "st-1" / "in", "a.csv", "b.csv", "c.csv")
    assert main(["status", "--registry", str(registry)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "parked" in line).split()
    row = next(line.split() for line in lines if line.lstrip().startswith("st-1 "))
    assert row[header.index("parked")] == "3"


def test_cli_status_bad_registry_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--registry", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert "missing.toml" in err and "registry file not found" in err
    assert "Traceback" not in err


def test_cli_status_registry_from_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = make_registry(tmp_path)
    monkeypatch.setenv("PYWATS_REGISTRY", str(registry))
    assert main(["status", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["instances"]) == 2


@pytest.mark.parametrize(
    ("seconds", "precise", "text"),
    [
        (None, False, "-"),
        (0.42, True, "0.4s"),
        (12.7, False, "12s"),
        (303, False, "5m03s"),
        (7500, False, "2h05m"),
        (3 * 86400 + 4 * 3600, False, "3d04h"),
    ],
)
def test_format_duration(seconds: float | None, precise: bool, text: str) -> None:
    assert format_duration(seconds, precise=precise) == text


def test_cli_status_watch_renders_until_ctrl_c(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = make_registry(tmp_path)
    ticks: list[float] = []

    def fake_sleep(seconds: float) -> None:
        ticks.append(seconds)
        if len(ticks) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("pywats_client.cli.status.time.sleep", fake_sleep)
    assert main(["status", "--registry", str(registry), "--watch", "--interval", "0.5"]) == 0
    assert ticks == [0.5, 0.5]
    assert "st-1" in capsys.readouterr().out


def test_cli_supervise_bad_registry_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "instances.toml"
    path.write_text("[supervisor]\nheartbeat_interval = 'often'\n")
    assert main(["supervise", "--registry", str(path)]) == 2
    err = capsys.readouterr().err
    assert "heartbeat_interval" in err and "Traceback" not in err


def test_unreadable_status_file_says_permission_denied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / STATUS_NAME
    write_status(path, {"format": 1})
    refuse_reading(monkeypatch, path)
    with pytest.raises(FatalError, match="permission denied; run this as the user"):
        read_status(path)


def test_status_write_waits_out_a_brief_read_and_gives_up_on_a_long_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows: a GUI reading status.json blocks the replace for a moment."""
    monkeypatch.setattr(_fsutil, "_IS_WINDOWS", True)
    monkeypatch.setattr(_fsutil, "_SHARING_FIRST_DELAY", 0.0001)
    path = tmp_path / STATUS_NAME
    write_status(path, {"format": 1, "n": 0})
    real_replace = os.replace
    refusals = {"left": 3}

    def held(source: Any, target: Any) -> None:
        if Path(target) == path and refusals["left"] > 0:
            refusals["left"] -= 1
            raise PermissionError(13, "The process cannot access the file", str(target))
        real_replace(source, target)

    monkeypatch.setattr(_fsutil.os, "replace", held)
    assert write_status(path, {"format": 1, "n": 1})
    assert read_status(path) == {"format": 1, "n": 1}

    refusals["left"] = 1000  # a reader that does not let go
    assert not write_status(path, {"format": 1, "n": 2})  # the next interval tries again
    assert read_status(path) == {"format": 1, "n": 1}
    assert list(iter_temp_files(tmp_path)) == []


# --- readable at 80 columns, complete when piped ----------------------------------------

LONG_ERROR = (
    "worker exited with code 1: cannot reach https://acme.wats.com: connection refused "
    "(check service_address)"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def running_supervisor_with_long_values(tmp_path: Path) -> Path:
    """A live status file: a 7-digit pid, 'disconnected', 'crash-looping', a long error."""
    registry = make_registry(tmp_path)
    state_dir = tmp_path / ".pywats"
    state_dir.mkdir()
    doc = status_document(
        pid=os.getpid(), create_time=psutil.Process().create_time(), updated_at=time.time()
    )
    one, two = doc["instances"]
    one["pid"] = 2371234
    two["last_error"] = LONG_ERROR
    two["snapshot"] = {**one["snapshot"], "connection": "disconnected"}
    one["snapshot"]["warnings"] = ["watch folder in: no file has arrived there yet"]
    one["snapshot"] |= {"in_error": 1, "error_folders": {str(tmp_path / "st-1" / "Error"): 1}}
    assert write_status(state_dir / STATUS_NAME, doc)
    return registry


def test_cli_status_at_80_columns_keeps_pids_states_and_server_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = running_supervisor_with_long_values(tmp_path)
    error = tmp_path / "st-1" / "Error"
    monkeypatch.setattr(console, "_force_terminal", True)
    monkeypatch.setattr(console, "_width", 80)
    assert main(["status", "--registry", str(registry)]) == 0
    lines = ANSI.sub("", capsys.readouterr().out).splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines)
    # no room for a "parked" column: the line below the table says it
    wanted = "".join(f"st-1: 1 file(s) parked in {error},".split())
    assert wanted in "".join("".join(lines).split())  # long paths fold anywhere
    one = next(line for line in lines if line.startswith("st-1 "))
    assert "running" in one and "2371234" in one and "connected" in one
    two = next(line for line in lines if line.startswith("st-2 "))
    assert "crash-looping" in two and "disconnected" in two
    assert "…" not in "\n".join(lines)
    assert LONG_ERROR in " ".join(" ".join(line.split()) for line in lines)


def test_an_old_error_shows_its_age(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad file an hour ago must not read as what the station does now."""
    registry = make_registry(tmp_path)
    (tmp_path / ".pywats").mkdir()
    now = time.time()
    doc = status_document(
        pid=os.getpid(), create_time=psutil.Process().create_time(), updated_at=now
    )
    one = doc["instances"][0]
    one["snapshot"] = {
        **one["snapshot"],
        "last_error": "bad.xml: no serial",
        "last_error_at": now - 3700,
    }
    assert write_status(tmp_path / ".pywats" / STATUS_NAME, doc)

    (instance, _) = list_instances(registry)
    assert instance.last_error == "bad.xml: no serial"
    assert instance.last_error_at is not None
    assert abs(instance.last_error_at.timestamp() - (now - 3700)) < 1
    assert main(["status", "--registry", str(registry)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if " st-1 " in f" {line}")
    assert "(1h01m ago) bad.xml: no serial" in row


def test_cli_status_check_is_a_health_check_for_monitoring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = make_registry(tmp_path)
    # no supervisor: unhealthy, and it says so in one line
    assert main(["status", "--registry", str(registry), "--check"]) == 1
    assert f"no supervisor runs for {registry}" in " ".join(capsys.readouterr().out.split())

    (tmp_path / ".pywats").mkdir()
    me = psutil.Process()
    now = time.time()
    doc = status_document(pid=os.getpid(), create_time=me.create_time(), updated_at=now)
    one = doc["instances"][0]["snapshot"]
    one["warnings"] = ["2 queue file(s) in q/quarantine cannot be read and are not sent"]
    assert write_status(tmp_path / ".pywats" / STATUS_NAME, doc)
    assert main(["status", "--registry", str(registry), "--check"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "st-2: crash-looping: boom" in out
    assert "st-1: 1 report(s) in failed/" in out and "queue list st-1" in out
    assert "st-1: 2 queue file(s) in q/quarantine cannot be read" in out
    assert "parked" not in out  # no Error folder has files yet

    healthy = {**doc["instances"][0], "snapshot": {**one, "failed": 0, "warnings": []}}
    doc["instances"] = [healthy, {**healthy, "name": "st-2"}]
    assert write_status(tmp_path / ".pywats" / STATUS_NAME, doc)
    assert main(["status", "--registry", str(registry), "--check"]) == 0
    assert "OK: 2 of 2 station(s) running" in capsys.readouterr().out

    # a file that did not convert is a result not in WATS: someone must act
    parked = {"in_error": 3, "error_folders": {"/r/a/Error": 1, "/r/b/Error": 2}}
    doc["instances"][1] = {**healthy, "name": "st-2", "snapshot": {**one, **parked}}
    assert write_status(tmp_path / ".pywats" / STATUS_NAME, doc)
    assert main(["status", "--registry", str(registry), "--check"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "st-2: 3 file(s) parked in /r/a/Error (1), /r/b/Error (2), not converted" in out
    assert "read <file>.error.txt beside each" in out and "move the file back" in out
    doc["instances"][1] = {**healthy, "name": "st-2"}
    assert write_status(tmp_path / ".pywats" / STATUS_NAME, doc)
    assert main(["status", "--registry", str(registry), "--check"]) == 0
    capsys.readouterr()

    # an edited config the supervisor refused: running on, fatal at the next restart,
    # though a newer error of the station is what last_error shows
    refused = f"{CONFIG_NOT_APPLIED}: st-1/config.json: max_queue_size: Input should be >= 1"
    doc["instances"][0] = {**healthy, "config_problem": refused, "last_error": None}
    assert write_status(tmp_path / ".pywats" / STATUS_NAME, doc)
    assert main(["status", "--registry", str(registry), "--check"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert f"st-1: {refused}; it fails at its next restart" in out
    doc["instances"][0] = healthy

    # a station cut off for long, and a supervisor that stopped writing its status
    doc["instances"][1] = {
        **healthy,
        "name": "st-2",
        "snapshot": {**healthy["snapshot"], "connection": "disconnected"},
    }
    doc["instances"][1]["snapshot"]["connection_since"] = now - 3600
    doc["supervisor"]["updated_at"] = now - 120
    assert write_status(tmp_path / ".pywats" / STATUS_NAME, doc)
    assert main(["status", "--registry", str(registry), "--check"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "st-2: no connection to its server for 1h" in out
    assert f"the supervisor (pid {os.getpid()}) has not written its status for 2m" in out

    # a broken registry: still one line and exit 1, as a monitor expects
    registry.write_text("[[instance]\n")
    assert main(["status", "--registry", str(registry), "--check"]) == 1
    assert capsys.readouterr().out.startswith("registry: ")


def test_cli_status_shows_what_a_running_station_warns_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = make_registry(tmp_path)
    (tmp_path / ".pywats").mkdir()
    doc = status_document(
        pid=os.getpid(), create_time=psutil.Process().create_time(), updated_at=time.time()
    )
    doc["instances"][0]["snapshot"]["warnings"] = ["2 queue file(s) in q/quarantine cannot be read"]
    assert write_status(tmp_path / ".pywats" / STATUS_NAME, doc)
    assert main(["status", "--registry", str(registry)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "st-1: 2 queue file(s) in q/quarantine cannot be read" in out


def test_cli_status_piped_keeps_every_column_on_one_line(tmp_path: Path) -> None:
    """`pywats-client status | cat` in an 80-column terminal."""
    registry = running_supervisor_with_long_values(tmp_path)
    shown = run_cli("status", "--registry", str(registry), COLUMNS="80")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    header = next(line for line in lines if "uptime" in line)
    assert "server" in header and "last error" in header
    two = next(line for line in lines if line.strip().startswith("st-2 "))
    assert "crash-looping" in two and "disconnected" in two and LONG_ERROR in two
    one = next(line for line in lines if line.strip().startswith("st-1 "))
    assert "2371234" in one and "connected" in one
    warning = next(line for line in lines if "no file has arrived" in line)
    assert warning == "  st-1: watch folder in: no file has arrived there yet"  # not padded


def test_registry_not_found_says_how_a_registry_is_found_and_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYWATS_REGISTRY", raising=False)
    assert main(["status"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "instances.toml: registry file not found" in err
    assert "no --registry given and $PYWATS_REGISTRY is not set" in err
    assert "pywats-client init --config" in err and "docs/quickstart.md" in err
    assert "[[instance]]" in err  # printed as written, not eaten as rich markup
    assert "instances.example.toml" not in err  # pip-installed users have none
    monkeypatch.setenv("PYWATS_REGISTRY", str(tmp_path / "elsewhere.toml"))
    assert main(["logs", "st-1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "elsewhere.toml: registry file not found (from $PYWATS_REGISTRY)" in err
