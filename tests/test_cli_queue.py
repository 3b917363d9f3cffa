"""`pywats-client queue list/requeue`: output, exit codes, safety with a live store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pywats_client.cli import main
from pywats_client.cli._output import console
from pywats_client.queue import NewReport, QueueStore

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


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["queue", "requeue", "--help"])
    assert done.value.code == 0
    assert "--all-failed" in capsys.readouterr().out
