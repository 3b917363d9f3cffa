"""`pywats-client queue list/requeue`: output, exit codes, safety with a live store."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from pywats_client import _pidlock
from pywats_client.cli import main
from pywats_client.cli._output import console
from pywats_client.core import ClientConfig, acquire_instance_lock
from pywats_client.core._worker_pid import running_worker_pid
from pywats_client.queue import NewReport, QueueStore
from pywats_client.queue import store as store_module

IDS = [f"0000000{i}-aaaa-bbbb-cccc-dddddddddddd" for i in range(3)]


@pytest.fixture
def station(tmp_path: Path) -> tuple[Path, QueueStore]:
    config = tmp_path / "station.json"
    config.write_text(json.dumps({"instance_name": "st1", "queue_path": "q"}))
    store = QueueStore(tmp_path / "q")
    store.enqueue(
        [NewReport({"id": i, "pn": "x"}, f"file{n}.txt", "ab", "WSJF") for n, i in enumerate(IDS)]
    )
    first = store.claim()
    assert first is not None
    store.dead_letter(first, reason="the server rejected it (400): pn missing", status=400)
    second = store.claim()
    assert second is not None
    store.retry_later(second, delay=600, error="503 busy", status=503)
    return config, store


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["queue", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json_shows_both_states_with_errors(
    station: tuple[Path, QueueStore], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = station
    code, out, _ = run(capsys, "list", "--config", str(config), "--json")
    assert code == 0
    reports = json.loads(out)["reports"]
    assert [(r["state"], r["id"]) for r in reports] == [
        ("pending", IDS[2]),
        ("pending", IDS[1]),
        ("failed", IDS[0]),
    ]
    assert reports[1]["attempts"] == 1 and reports[1]["last_error"] == "503 busy"
    assert reports[1]["next_attempt_at"] is not None
    assert reports[2]["last_error"] == "the server rejected it (400): pn missing"
    assert reports[2]["source_name"] == "file0.txt"


def test_list_state_filter_limit_and_table(
    station: tuple[Path, QueueStore],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config, _ = station
    monkeypatch.setattr(console, "_width", 160)
    code, out, _ = run(
        capsys, "list", "--config", str(config), "--state", "pending", "--json", "--limit", "1"
    )
    assert code == 0
    data = json.loads(out)
    assert [r["id"] for r in data["reports"]] == [IDS[2]]
    assert data["truncated"] == {"pending": True}
    code, out, _ = run(capsys, "list", "--config", str(config), "--state", "failed")
    assert code == 0
    assert "file0.txt" in out and "pn missing" in out and "file1.txt" not in out


def test_requeue_by_id_and_all_failed(
    station: tuple[Path, QueueStore], capsys: pytest.CaptureFixture[str]
) -> None:
    config, store = station
    code, out, err = run(capsys, "requeue", "--config", str(config), IDS[0], "not-an-id")
    assert code == 1  # one id was not in failed/
    assert IDS[0] in out and "not-an-id is not in failed/" in err
    assert store.counts().failed == 0
    requeued = [i for i in store.iter_items("pending") if i.id == IDS[0]]
    assert len(requeued) == 1 and requeued[0].envelope.attempts == 0

    code, out, _ = run(capsys, "requeue", "--config", str(config), "--all-failed", "--json")
    assert code == 0
    assert json.loads(out) == {"requeued": [], "missing": [], "unreadable": []}


def test_a_full_disk_during_requeue_is_an_error_naming_the_file_not_a_bug(
    station: tuple[Path, QueueStore],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config, store = station
    tmp = store.tmp_dir / "x.json.pywats-tmp"

    def full(folder: Path, name: str, data: bytes) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    monkeypatch.setattr(store_module, "write_temp", full)
    code, _, err = run(capsys, "requeue", "--config", str(config), "--all-failed")
    message = " ".join(err.split())
    assert code == 1
    assert f"No space left on device: '{tmp}'" in message and "free space" in message
    assert "this is a bug" not in message
    assert store.counts().failed == len(list(store.iter_items("failed")))  # nothing lost


def test_requeue_usage_errors_exit_2(
    station: tuple[Path, QueueStore], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = station
    with pytest.raises(SystemExit) as neither:
        main(["queue", "requeue", "--config", str(config)])
    assert neither.value.code == 2
    with pytest.raises(SystemExit) as both:
        main(["queue", "requeue", "--config", str(config), "--all-failed", IDS[0]])
    assert both.value.code == 2
    assert "one of the two" in capsys.readouterr().err


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "list", "--config", str(tmp_path / "missing.json"))
    assert code == 2
    assert "missing.json" in err and "not found" in err


def test_list_without_queue_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"queue_path": "nothing-yet"}))
    code, out, _ = run(capsys, "list", "--config", str(config))
    assert code == 0 and "nothing has been queued" in out
    assert not (tmp_path / "nothing-yet").exists()  # listing creates nothing


def test_list_of_a_queue_with_only_unreadable_files_is_not_called_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "station.json"
    config.write_text(json.dumps({"instance_name": "st1", "queue_path": "q"}))
    (tmp_path / "q" / "pending").mkdir(parents=True)
    name = "01700000000000000000-0a0b0c0d-1111-2222-3333-444455556666.json"
    (tmp_path / "q" / "pending" / name).write_text("{")
    code, out, err = run(capsys, "list", "--config", str(config))
    assert code == 1
    assert "is empty" not in out
    assert "no readable report" in " ".join(out.split()) and name in err
    code, out, _ = run(capsys, "list", "--config", str(config), "--json")
    assert code == 1
    assert json.loads(out)["unreadable"][0].startswith(f"pending/{name}: cannot be read")


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["queue", "requeue", "--help"])
    assert done.value.code == 0
    assert "--all-failed" in capsys.readouterr().out


# --- readable at any width; complete when piped -------------------------------------------

LONG_REASON = (
    "the server rejected it (400): Validation failed: the field 'pn' is required and the "
    "serial number does not match the pattern of part PCBA-400"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def long_failure(tmp_path: Path) -> Path:
    config = tmp_path / "station.json"
    config.write_text(json.dumps({"instance_name": "st1", "queue_path": "q"}))
    store = QueueStore(tmp_path / "q")
    store.enqueue([NewReport({"id": IDS[0], "pn": "x"}, "SN-000123_fct.xml", "ab", "WSJF")])
    item = store.claim()
    assert item is not None
    store.dead_letter(item, reason=LONG_REASON, status=400)
    return config


def on_terminal(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    """Make the CLI's console behave as a terminal of ``width`` columns."""
    monkeypatch.setattr(console, "_force_terminal", True)
    monkeypatch.setattr(console, "_width", width)


def lines_of(out: str) -> list[str]:
    return ANSI.sub("", out).splitlines()


def test_list_at_80_columns_keeps_id_and_state_whole_and_the_error_readable(
    long_failure: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    on_terminal(monkeypatch, 80)
    code, out, _ = run(capsys, "list", "--config", str(long_failure), "--state", "failed")
    assert code == 0
    lines = lines_of(out)
    assert all(len(line.rstrip()) <= 80 for line in lines)
    assert any("failed" in line and IDS[0] in line for line in lines), out
    assert any("SN-000123_fct.xml" in line for line in lines)
    # the error folds at word boundaries over a few lines, not 4-5 letters per line
    words = " ".join(" ".join(line.split()) for line in lines)
    assert LONG_REASON in words
    assert len(lines) <= 8, out


def test_list_on_a_wide_terminal_is_a_table(
    long_failure: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    on_terminal(monkeypatch, 200)
    code, out, _ = run(capsys, "list", "--config", str(long_failure))
    assert code == 0
    lines = lines_of(out)
    assert all(len(line.rstrip()) <= 200 for line in lines)
    header = next(line for line in lines if "next attempt" in line)
    assert "last error" in header and "attempts" in header
    row = next(line for line in lines if IDS[0] in line)
    assert "failed" in row and "SN-000123_fct.xml" in row


def test_list_piped_is_one_complete_line_per_report(
    long_failure: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "_width", 80)  # COLUMNS=80 in the environment
    code, out, _ = run(capsys, "list", "--config", str(long_failure))
    assert code == 0
    row = next(line for line in lines_of(out) if IDS[0] in line)
    assert "failed" in row and "SN-000123_fct.xml" in row and LONG_REASON in row


# --- requeue: a hint to copy, and whether a worker will send them ------------------------


def test_requeue_hint_repeats_the_config_given(
    station: tuple[Path, QueueStore], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = station
    code, _, err = run(capsys, "requeue", "--config", str(config), "not-an-id")
    assert code == 1
    assert f"'pywats-client queue list --config {config} --state failed'" in " ".join(err.split())


def test_requeue_without_a_running_worker_says_when_they_are_sent(
    station: tuple[Path, QueueStore], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = station
    code, out, _ = run(capsys, "requeue", "--config", str(config), "--all-failed")
    assert code == 0
    text = " ".join(out.split())
    assert "no worker runs for this station now; they are sent when it starts" in text
    assert "within seconds" not in text


def test_requeue_with_the_worker_running_names_it(
    station: tuple[Path, QueueStore], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = station
    lock = acquire_instance_lock(ClientConfig.load(config))  # what `run` and a worker hold
    try:
        code, out, _ = run(capsys, "requeue", "--config", str(config), "--all-failed")
    finally:
        lock.release()
    assert code == 0
    assert "a running worker uploads them within seconds" in " ".join(out.split())


def test_a_pid_file_left_by_a_killed_worker_is_no_running_worker(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "instance.pid").write_text(f"{gone.pid}\n")
    assert running_worker_pid(tmp_path) is None
    (tmp_path / "instance.pid").write_text(f"{os.getpid()}\n")
    assert running_worker_pid(tmp_path) == os.getpid()
    # our pid, but the file is older than this process: the pid was reused since
    old = psutil.Process().create_time() - 3600
    os.utime(tmp_path / "instance.pid", (old, old))
    assert running_worker_pid(tmp_path) is None
    assert running_worker_pid(tmp_path / "no-queue") is None


def test_requeue_never_takes_the_instance_lock(
    station: tuple[Path, QueueStore],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Taking it even for an instant could refuse a worker starting at that moment."""
    config, _ = station
    taken: list[object] = []
    monkeypatch.setattr(_pidlock.PidLock, "take", lambda *a: taken.append(a))
    assert run(capsys, "requeue", "--config", str(config), "--all-failed")[0] == 0
    assert taken == []


# --- the instance by NAME and --registry ----------------------------------------------------


@pytest.fixture
def registry(station: tuple[Path, QueueStore]) -> Path:
    config, _ = station
    path = config.parent / "instances.toml"
    path.write_text(f'[[instance]]\nname = "st1"\nconfig = "{config.name}"\n')
    return path


def test_list_and_requeue_by_instance_name(
    registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "list", "st1", "--registry", str(registry), "--json")
    assert code == 0
    assert {r["id"] for r in json.loads(out)["reports"]} == set(IDS)
    code, _, err = run(capsys, "requeue", "st1", "nope", IDS[0], "--registry", str(registry))
    assert code == 1  # "nope" is not in failed/
    hint = f"'pywats-client queue list st1 --registry {registry} --state failed'"
    assert hint in " ".join(err.split())
    code, out, _ = run(capsys, "requeue", "st1", "--registry", str(registry), "--all-failed")
    assert code == 0 and "no failed reports" in out


def test_instance_name_from_the_environment_registry(
    registry: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYWATS_REGISTRY", str(registry))
    code, out, err = run(capsys, "requeue", "st1", IDS[0], "--json")
    assert code == 0, err
    assert json.loads(out)["requeued"] == [IDS[0]]


def test_unknown_instance_name_exits_2_naming_the_known(
    registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "list", "st9", "--registry", str(registry))
    assert code == 2
    assert "no instance named 'st9'" in err and "st1" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],  # neither --config nor NAME
        ["list", "st1", "--config", "station.json"],
        ["list", "--config", "station.json", "--registry", "instances.toml"],
        ["requeue", "--all-failed"],
    ],
)
def test_config_or_name_is_bad_usage_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["queue", *argv])
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err
