"""The torture audit catches what it promises to catch (no processes: folders built by hand).

A torture run that passes means something only if its audit fails on a lost,
doubled or stuck report, a bad file outside Error, a left-over temp file, a
leaked token or a world-readable queue file. Each test builds that situation.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from pywats_client._fsutil import TEMP_SUFFIX
from tests._torture import Dropped, InputMaker, Planted, StationLayout, audit, parse_kinds

TOKEN = "dG9ydHVyZTpzZWNyZXQtdG9rZW4="


@pytest.fixture
def station(tmp_path: Path) -> StationLayout:
    layout = StationLayout("st1", tmp_path / "st1" / "config.json", tmp_path / "st1" / "in",
                           tmp_path / "st1" / "queue")  # fmt: skip
    for folder in (layout.watch, layout.done, layout.error):
        folder.mkdir(parents=True, exist_ok=True)
    for sub in ("", "pending", "failed", "quarantine", "tmp"):
        (layout.queue / sub).mkdir(parents=True, exist_ok=True)
        (layout.queue / sub).chmod(0o700)
    layout.config.write_text("{}")
    layout.config.chmod(0o600)
    return layout


def drop(station: StationLayout, count: int = 3) -> list[Dropped]:
    maker = InputMaker(random.Random(1), "T", 1024)
    return [maker.drop_valid(station.watch, station.name) for _ in range(count)]


def accepted(files: list[Dropped], times: int = 1) -> list[dict[str, Any]]:
    return [{"id": f.report_id, "sn": f.sn, "times_received": times} for f in files]


def done(station: StationLayout, files: list[Dropped]) -> None:
    for f in files:
        (station.watch / f.name).rename(station.done / f.name)


def queue_file(folder: Path, rid: str, sn: str, **envelope: Any) -> Path:
    path = folder / f"{1:020d}-{rid}.json"
    path.write_text(json.dumps({"envelope": {"id": rid, **envelope}, "report": {"sn": sn}}))
    path.chmod(0o600)
    return path


def test_all_accepted_is_clean_and_resubmissions_are_counted(station: StationLayout) -> None:
    files = drop(station)
    done(station, files)
    result = audit([station], files, accepted(files, times=2))
    assert result.ok, result.findings
    assert (result.valid, result.accepted, result.resubmitted) == (3, 3, 3)


def test_a_report_nowhere_is_lost(station: StationLayout) -> None:
    files = drop(station)
    done(station, files)
    result = audit([station], files, accepted(files[:2]))
    assert result.lost == 1 and not result.ok
    assert "LOST" in result.findings[0]


def test_pending_or_unpicked_files_are_stuck(station: StationLayout) -> None:
    files = drop(station)
    done(station, files[1:2])
    queue_file(station.queue / "pending", str(files[2].report_id), str(files[2].sn))
    (station.done / files[2].name).write_text("moved")
    (station.watch / files[2].name).unlink()
    result = audit([station], files, accepted(files[1:2]))
    assert (result.stuck, result.lost) == (2, 0)


def test_a_second_id_for_one_file_is_a_duplicate(station: StationLayout) -> None:
    files = drop(station, 1)
    done(station, files)
    reports = [*accepted(files), {"id": "0" * 32, "sn": files[0].sn, "times_received": 1}]
    result = audit([station], files, reports)
    assert result.duplicated == 1 and not result.ok


def test_failed_needs_the_servers_reason_and_never_with_acceptance(
    station: StationLayout,
) -> None:
    files = drop(station, 3)
    done(station, files)
    a, b, c = files
    queue_file(station.queue / "failed", str(a.report_id), str(a.sn), last_status=400,
               last_error="HTTP 400: rejected")  # fmt: skip
    queue_file(station.queue / "failed", str(b.report_id), str(b.sn), last_status=503,
               last_error="HTTP 503")  # fmt: skip
    queue_file(station.queue / "failed", str(c.report_id), str(c.sn), last_status=400,
               last_error="HTTP 400")  # fmt: skip
    result = audit([station], files, accepted([c]))
    assert result.failed_ids == {a.report_id, b.report_id, c.report_id}
    assert (result.failed, result.accepted, result.lost) == (2, 1, 0)
    assert any("without a server rejection" in f and b.name in f for f in result.findings)
    assert any("both accepted" in f and c.name in f for f in result.findings)
    assert not any(a.name in f for f in result.findings)


def test_bad_files_need_error_and_a_reason(station: StationLayout) -> None:
    maker = InputMaker(random.Random(2), "B", 1024)
    bad = [maker.drop_bad(station.watch, "st1", kind) for kind in ("empty", "binary", "xxe")]
    for f in bad:
        (station.watch / f.name).rename(station.error / f.name)
    (station.error / f"{bad[0].name}.error.txt").write_text("file: x\nreason:    empty\n")
    (station.error / f"{bad[1].name}.error.txt").write_text("file: x\nreason:\n")
    (station.error / bad[2].name).rename(station.done / bad[2].name)
    result = audit([station], bad, [])
    assert result.errored == 1
    assert [f.split(" ")[0] for f in result.findings] == [bad[1].name, bad[2].name]


def test_planted_queue_files_must_be_quarantined_with_a_reason(station: StationLayout) -> None:
    quarantine = station.queue / "quarantine"
    for name in ("a.json", "b.json"):
        (quarantine / name).write_text("x")
        (quarantine / name).chmod(0o600)
    (quarantine / "a.json.reason.txt").write_text("corrupt")
    (quarantine / "a.json.reason.txt").chmod(0o600)
    planted = [Planted("st1", n, "garbage") for n in ("a.json", "b.json")]
    result = audit([station], [], [], planted=planted)
    assert result.quarantined == 1
    assert result.findings == ["planted garbage queue file b.json: not quarantined with a reason"]


def test_temp_files_tokens_and_loose_modes_are_findings(station: StationLayout) -> None:
    (station.queue / "tmp" / f"x{TEMP_SUFFIX}").write_text("")
    (station.queue / "tmp" / f"x{TEMP_SUFFIX}").chmod(0o600)
    log = station.config.parent / "worker.log"
    log.write_text(f"posting with Basic {TOKEN}\n")
    (station.queue / "pending").chmod(0o755)
    station.config.write_text(json.dumps({"api_token": TOKEN}))  # the config may hold it
    result = audit([station], [], [], secrets=[TOKEN], scan_root=station.config.parent)
    text = "\n".join(result.findings)
    assert f"temp file left: {station.queue / 'tmp' / ('x' + TEMP_SUFFIX)}" in text
    assert f"a token appears in {log}" in text
    assert "config.json" not in text
    assert "pending: mode 0755, expected 0700" in text


def test_a_decoded_token_is_found_too(station: StationLayout) -> None:
    (station.watch / "trace.txt").write_text("user torture:secret-token")
    result = audit([station], [], [], secrets=[TOKEN], scan_root=station.watch)
    assert result.findings == [f"a token appears in {station.watch / 'trace.txt'}"]


def test_fault_names_and_aliases() -> None:
    assert parse_kinds("kill, 503") == ("kill-worker", "kill-supervisor", "503")
    assert len(parse_kinds("all")) == 12
    assert parse_kinds("none") == ()
    with pytest.raises(ValueError, match="unknown fault 'dwon'"):
        parse_kinds("dwon")
