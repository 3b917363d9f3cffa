"""`pywats-client start|stop|restart|pause|resume|reload` against a fake supervisor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pywats_client.cli import main
from pywats_client.cli.control import _COMMANDS
from tests._control_fakes import FakeSupervisor, serving, write_registry

NAMES = ["st-1", "st-2", "st-3"]


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return write_registry(tmp_path, NAMES)


@pytest.fixture
def fake(registry: Path, tmp_path: Path) -> Iterator[FakeSupervisor]:
    fake = FakeSupervisor(registry, NAMES)
    with serving(fake, tmp_path / ".pywats"):
        yield fake


def test_restart_prints_the_new_state(
    fake: FakeSupervisor, registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = fake.record("st-2")["pid"]
    assert main(["restart", "st-2", "--registry", str(registry)]) == 0
    out = capsys.readouterr().out
    new = fake.record("st-2")["pid"]
    assert "restart: 1 instance(s)" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("st-2"))
    assert "running" in row and str(new) in row and f"running {old}" in row and "ok" in row


def test_json_output_for_programs(
    fake: FakeSupervisor, registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stop", "--all", "--registry", str(registry), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["command"] == "stop" and document["ok"] is True
    assert document["registry"] == str(registry)
    assert [(i["name"], i["state"], i["pid"]) for i in document["instances"]] == [
        (n, "stopped", None) for n in NAMES
    ]


def test_pause_and_resume(
    fake: FakeSupervisor, registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pause", "st-1", "st-3", "--registry", str(registry)]) == 0
    assert fake.record("st-1")["paused"] and fake.record("st-3")["paused"]
    assert not fake.record("st-2")["paused"]
    assert main(["resume", "st-1", "--registry", str(registry), "--json"]) == 0
    assert not fake.record("st-1")["paused"]


def test_not_done_exits_1_with_the_reason(
    fake: FakeSupervisor, registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.settle = 5.0
    assert main(["restart", "st-1", "--registry", str(registry), "--wait", "0.2"]) == 1
    assert "still stopping after 0.2 s" in " ".join(capsys.readouterr().out.split())
    assert main(["stop", "st-2", "--registry", str(registry), "--no-wait"]) == 0


def test_reload(fake: FakeSupervisor, registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reload", "--registry", str(registry)]) == 0
    assert "reload: 3 instance(s)" in capsys.readouterr().out
    fake.reload_problem = "registry change not applied: instances.toml: not valid TOML"
    assert main(["reload", "--registry", str(registry)]) == 1
    assert "not valid TOML" in capsys.readouterr().err


def test_unknown_name_is_bad_usage_exit_2_listing_the_known(
    fake: FakeSupervisor, registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stop", "st-9", "--registry", str(registry)]) == 2  # as `logs st-9` does
    err = capsys.readouterr().err
    assert "st-9" in err and "known: st-1, st-2, st-3" in err
    assert fake.calls == []
    assert main(["stop", "st-9", "--registry", str(registry), "--json"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert document["error"]["kind"] == "unknown-instance"
    assert document["error"]["known"] == NAMES


def test_unknown_name_without_a_supervisor_is_still_exit_2(
    registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The name is checked against the registry first: no 'start a supervisor' detour."""
    assert main(["pause", "station3", "--registry", str(registry)]) == 2
    err = capsys.readouterr().err
    assert "no instance named 'station3'" in err and "no supervisor" not in err
    assert main(["logs", "station3", "--registry", str(registry)]) == 2


def test_a_name_the_running_supervisor_does_not_know_yet_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = write_registry(tmp_path, [*NAMES, "st-4"])  # added, not reloaded yet
    with serving(FakeSupervisor(registry, NAMES), tmp_path / ".pywats"):
        assert main(["restart", "st-4", "--registry", str(registry)]) == 2
    assert "pywats-client reload" in capsys.readouterr().err


def test_no_supervisor_exits_1_saying_how_to_start_it(
    registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["restart", "st-1", "--registry", str(registry)]) == 1
    err = capsys.readouterr().err
    assert "no supervisor is running" in err
    assert f"pywats-client supervise --registry {registry}" in err


def test_registry_from_the_environment(
    fake: FakeSupervisor,
    registry: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PYWATS_REGISTRY", str(registry))
    assert main(["pause", "st-2"]) == 0
    assert fake.record("st-2")["paused"]


@pytest.mark.parametrize(
    "argv", [["stop"], ["stop", "st-1", "--all"], ["start", "--wait", "-1", "a"]]
)
def test_bad_usage_exits_2(
    registry: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--registry", str(registry)]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("command", [*_COMMANDS, "reload"])
def test_every_help_has_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert f"pywats-client {command} " in out.split("example", 1)[1]
