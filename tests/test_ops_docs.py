"""The admin documentation and the service recipes say what the code does.

* docs/configuration.md says, for every ``[supervisor]`` key, whether an edit
  reaches the running supervisor at once, each worker at its next start, or
  only a restarted supervisor - checked against the supervisor's reload.
* docs/operations.md's exit code table matches the exit code constants, and
  the supervisor really exits 2 without its registry.
* The Linux recipe creates the registry and configs (as the service account)
  before it starts the unit; the unit passes ``systemd-analyze verify``.
* The Windows recipes: the WinSW wrapper is not named like the CLI, NSSM keeps
  the registry path's quotes and never gets the token.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pywats_client.cli import main
from pywats_client.cli._output import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from pywats_client.core import SupervisorSettings
from pywats_client.supervisor import EXIT_CONFIG, EXIT_LOCKED
from pywats_client.supervisor._states import Timing
from pywats_client.supervisor._supervisor import Supervisor
from pywats_client.supervisor.worker import (
    EXIT_CRASHED,
    EXIT_ORPHANED,
    EXIT_TERMINATED,
    WorkerSpec,
)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
OPERATIONS = DOCS / "operations.md"
WINDOWS = ROOT / "packaging" / "windows"
WINSW_XML = WINDOWS / "pywats-client-service.xml"
NSSM_SCRIPT = WINDOWS / "install-nssm.cmd"
SYSTEMD_UNIT = ROOT / "packaging" / "systemd" / "pywats-client.service"
CLI = "pywats-client"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _table_after(text: str, marker: str) -> list[list[str]]:
    """The body rows (cells stripped) of the Markdown table following ``marker``."""
    after = text.split(marker, 1)[1].split("\n", 1)[1]
    lines = after.split("\n\n", 1)[0].splitlines()
    assert lines and lines[0].startswith("|"), f"no table right after {marker!r}"
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[2:]]


def _section(text: str, heading: str) -> str:
    """From ``heading`` to the next heading of level 2 or 3 (code comments are level 1)."""
    start = text.index(f"\n{heading}\n") + 1
    ends = [text.find(mark, start + 1) for mark in ("\n## ", "\n### ")]
    return text[start : min([end for end in ends if end != -1], default=len(text))]


# --- configuration.md: when [supervisor] edits apply ------------------------------------

#: A value different from the default for every [supervisor] key.
CHANGED_SETTINGS = {
    "state_dir": "elsewhere",
    "log_dir": "other-logs",
    "heartbeat_interval": 2.0,
    "heartbeat_timeout": 20.0,
    "startup_grace": 40.0,
    "stop_timeout": 12.0,
    "restart_initial_delay": 1.0,
    "restart_max_delay": 70.0,
    "stable_after": 70.0,
    "crash_loop_exits": 6,
    "crash_loop_window": 70.0,
    "status_interval": 2.0,
    "metrics_port": 9999,
    "metrics_host": "0.0.0.0",
    "log_format": "json",
    "log_max_bytes": 2048,
    "log_backups": 3,
}


def _reload_rows() -> dict[str, set[str]]:
    rows = _table_after(_read(DOCS / "configuration.md"), "<!-- reload-table")
    found = {}
    for when, keys in rows:
        row = next(
            r for r in ("at once", "for each station", "when the supervisor") if when.startswith(r)
        )
        found[row] = set(re.findall(r"`(\w+)`", keys))
    return found


def test_configuration_says_when_each_supervisor_key_applies(tmp_path: Path) -> None:
    rows = _reload_rows()
    at_once, at_worker_start = rows["at once"], rows["for each station"]
    at_supervisor_restart = rows["when the supervisor"]
    keys = set(SupervisorSettings.model_fields)
    assert set(CHANGED_SETTINGS) == keys, "give CHANGED_SETTINGS a value for the new key"
    assert at_once | at_worker_start | at_supervisor_restart == keys

    registry = tmp_path / "instances.toml"
    registry.write_text('[[instance]]\nname = "st-1"\nconfig = "st-1.json"\n', encoding="utf-8")
    supervisor = Supervisor(registry, install_signals=False)
    old = supervisor.settings
    new = SupervisorSettings(**CHANGED_SETTINGS)
    assert all(getattr(new, key) != getattr(old, key) for key in keys)
    supervisor._apply_settings(new)  # what a registry edit does to the running supervisor

    kept = {key for key in keys if getattr(supervisor.settings, key) == getattr(old, key)}
    # Workers get these only in their WorkerSpec at spawn, except what the
    # supervisor itself applies (stop_timeout: its wait before terminate).
    spec_only = {f.name for f in dataclasses.fields(WorkerSpec)} & keys
    spec_only -= {f.name for f in dataclasses.fields(Timing)}
    assert at_supervisor_restart - at_worker_start == kept
    assert at_worker_start == spec_only - kept
    assert at_once == keys - kept - spec_only
    # supervisor.log is configured once, from the settings at start
    assert {"log_max_bytes", "log_backups"} <= at_supervisor_restart


# --- operations.md: exit codes ---------------------------------------------------------

WORKER_CODES = {
    0: "stopped on request",
    EXIT_CRASHED: "crashed",
    EXIT_LOCKED: "locked",
    EXIT_CONFIG: "configuration error",
    EXIT_ORPHANED: "supervisor vanished",
    EXIT_TERMINATED: "terminated",
}
SUPERVISOR_CODES = {
    EXIT_OK: "SIGTERM",
    EXIT_FAILED: "another supervisor already runs",
    EXIT_USAGE: "registry is missing or invalid",
}


def test_the_exit_code_table_matches_the_code() -> None:
    rows = _table_after(_read(OPERATIONS), "<!-- exit-codes")
    supervisor = {int(code): text for code, text, _ in rows if text != "-"}
    worker = {
        int(code): text for code, _, text in rows if text != "-" and code.lstrip("-").isdigit()
    }
    assert set(supervisor) == set(SUPERVISOR_CODES)
    assert set(worker) == set(WORKER_CODES)
    for code, words in SUPERVISOR_CODES.items():
        assert words in supervisor[code], (code, supervisor[code])
    for code, words in WORKER_CODES.items():
        assert words in worker[code], (code, worker[code])


def test_the_supervisor_exits_2_without_its_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["supervise", "--registry", str(tmp_path / "instances.toml")]) == EXIT_USAGE
    assert "registry file not found" in capsys.readouterr().err


# --- the Linux recipe ------------------------------------------------------------------


def test_linux_recipe_writes_registry_and_configs_as_the_account_before_starting() -> None:
    section = _section(_read(OPERATIONS), "### Linux: systemd")
    assert section.index("nano /var/lib/pywats-client/instances.toml") < section.index(
        "systemctl enable --now pywats-client"
    )
    commands = [
        line
        for block in re.findall(r"^```bash\n(.*?)^```", section, re.S | re.M)
        for line in block.splitlines()
        if re.search(rf"{CLI} init |/var/lib/pywats-client/\S+\.(toml|json)", line)
        and not line.startswith("#")
    ]
    assert commands
    for line in commands:
        assert line.startswith("sudo -u pywats "), line


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    binary = Path(sys.executable).with_name(CLI)
    unit = _read(SYSTEMD_UNIT).replace(
        "/opt/pywats-client/venv/bin/pywats-client",
        str(binary if binary.exists() else Path(sys.executable)),
    )
    (tmp_path / SYSTEMD_UNIT.name).write_text(unit, encoding="utf-8")
    done = subprocess.run(
        ["systemd-analyze", "verify", SYSTEMD_UNIT.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert SYSTEMD_UNIT.name not in done.stderr, done.stderr


# --- the Windows recipes ---------------------------------------------------------------


def test_the_winsw_wrapper_is_not_named_like_the_cli() -> None:
    """cmd.exe runs .\\pywats-client.exe before the CLI on PATH: 'stop NAME' would stop all."""
    assert WINSW_XML.stem != CLI
    assert not (WINDOWS / f"{CLI}.xml").exists()
    wrapper = f"C:\\pywats-client\\{WINSW_XML.stem}.exe"
    for text in (_read(OPERATIONS), _read(WINSW_XML)):
        assert f"{wrapper} install" in text and f"{wrapper} start" in text
        assert not re.search(rf"\\{CLI}\.exe (install|start|stop)", text)


def test_nssm_script_keeps_the_registry_path_whole_and_the_token_out() -> None:
    script = _read(NSSM_SCRIPT)
    commands = [line for line in script.splitlines() if line.startswith('"%NSSM%"')]
    install = next(line for line in commands if " install " in line)
    assert '--registry """%REGISTRY%"""' in install  # NSSM's documented quote escape
    assert any(" get %SERVICE% AppParameters" in line for line in commands)
    environment = next(line for line in commands if " AppEnvironmentExtra " in line)
    assert '"PYWATS_REGISTRY=%REGISTRY%"' in environment
    # NSSM stores its settings in a registry key every user can read
    assert not re.search(r"AppEnvironmentExtra.*PYWATS_API_TOKEN", script)
