"""The demo's verdict: lost / duplicates / errored maths, reason files, the live tally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pywats_client._demo._samples import PlannedFile, SampleKind
from pywats_client._demo._setup import StationLayout
from pywats_client._demo._summary import (
    ErroredFile,
    Kill,
    is_complete,
    parse_reason,
    read_errored,
    summarize,
)
from pywats_client._demo._view import Tally
from pywats_client.core.snapshot import ClientSnapshot

FORMATS = {"station-1": ["wsjf"], "station-2": ["csv"]}


def pf(index: int, station: str = "station-1", *, valid: bool = True) -> PlannedFile:
    sn = f"SN-{index}"
    name = f"{sn}{'-corrupt' if not valid else ''}.json"
    return PlannedFile(index, station, name, "wsjf", sn, "{}", valid)


def report(sn: str, rid: str | None = None, times: int = 1) -> dict[str, Any]:
    return {"id": rid or f"id-{sn}", "sn": sn, "pn": "PN", "times_received": times}


def run(
    dropped: list[PlannedFile],
    reports: list[dict[str, Any]],
    errored: list[ErroredFile] = (),  # type: ignore[assignment]
    **kw: Any,
) -> Any:
    return summarize(dropped, dropped, reports, list(errored), formats=FORMATS, restarts={}, **kw)


def test_everything_accepted_is_ok() -> None:
    files = [pf(1), pf(2, "station-2"), pf(3, valid=False)]
    errored = [ErroredFile("station-1", files[2].name, "result: bad")]
    s = run(files, [report("SN-1"), report("SN-2")], errored)
    assert (s.ok, s.valid_files, s.bad_files, s.accepted, s.lost, s.duplicates) == (
        True,
        2,
        1,
        2,
        0,
        0,
    )
    assert s.bad_errored == 1 and s.errored[0].expected
    assert [(st.name, st.dropped, st.accepted, st.errored) for st in s.stations] == [
        ("station-1", 2, 1, 1),
        ("station-2", 1, 1, 0),
    ]


def test_missing_report_is_lost_and_named() -> None:
    s = run([pf(1), pf(2)], [report("SN-1")])
    assert (s.ok, s.accepted, s.lost, s.lost_files) == (False, 1, 1, ["SN-2.json"])


def test_same_serial_under_two_ids_is_a_duplicate() -> None:
    s = run([pf(1)], [report("SN-1", "a"), report("SN-1", "b"), report("SN-1", "c")])
    assert (s.ok, s.lost, s.duplicates) == (False, 0, 2)


def test_resubmitting_the_same_id_is_not_a_duplicate() -> None:
    s = run([pf(1), pf(2)], [report("SN-1", times=3), report("SN-2", times=2)])
    assert (s.ok, s.duplicates, s.resubmitted) == (True, 0, 3)


def test_reports_nobody_dropped_are_unexpected_not_accepted() -> None:
    bad = pf(2, valid=False)
    s = run([pf(1), bad], [report("SN-1"), report("SN-2"), report("OTHER")])
    assert (s.accepted, s.unexpected, s.bad_errored) == (1, 2, 0)


def test_a_valid_file_in_error_is_not_expected_and_counts_as_lost() -> None:
    files = [pf(1)]
    s = run(files, [], [ErroredFile("station-1", "SN-1.json", "truncated")])
    assert s.lost == 1 and not s.errored[0].expected and not s.ok


def test_undropped_files_do_not_count() -> None:
    planned = [pf(1), pf(2)]
    s = summarize(planned, planned[:1], [report("SN-1")], [], formats=FORMATS, restarts={})
    assert (s.files_planned, s.files_dropped, s.lost, s.ok) == (2, 1, 0, True)


def test_summary_dict_is_json_ready() -> None:
    s = run(
        [pf(1)],
        [report("SN-1")],
        kills=[Kill("station-1", 10, 5, 11, 0.8)],
        folder=Path("/tmp/x"),
        elapsed_s=1.234,
    )
    data = s.to_dict()
    assert data["kills"] == [
        {
            "station": "station-1",
            "pid": 10,
            "after_files": 5,
            "restarted_pid": 11,
            "back_after_s": 0.8,
        }
    ]
    assert data["folder"] == str(Path("/tmp/x")) and data["elapsed_s"] == 1.23


def test_a_run_that_did_not_reach_its_end_is_not_ok() -> None:
    assert not run([pf(1)], [report("SN-1")], timed_out=True).ok
    assert not run([pf(1)], [report("SN-1")], interrupted=True).ok
    assert run([pf(1)], [report("SN-1")]).ok


def test_is_complete() -> None:
    files = [pf(1), pf(2, valid=False)]
    in_error = [ErroredFile("station-1", files[1].name, "x")]
    assert is_complete(files, 2, {"SN-1"}, in_error)
    assert not is_complete(files, 3, {"SN-1"}, in_error)  # not all dropped yet
    assert not is_complete(files, 2, set(), in_error)
    assert not is_complete(files, 2, {"SN-1"}, [])
    assert not is_complete(files, 2, {"SN-1"}, [ErroredFile("station-2", files[1].name, "x")])


def test_parse_reason() -> None:
    text = "file:      a.json\ntime:      t\nconverter: wsjf\nreason:    result: bad (got 'X')\n"
    assert parse_reason(text) == "result: bad (got 'X')"
    assert parse_reason("\n\nsomething odd\n") == "something odd"
    assert parse_reason("") == "(empty reason file)"


def test_read_errored_pairs_files_with_reasons(tmp_path: Path) -> None:
    kind = SampleKind("wsjf", "", "", ".json", "wsjf", "P")
    station = StationLayout("station-1", tmp_path / "c.json", tmp_path / "in", (kind,))
    assert read_errored([station]) == []  # no Error folder yet
    station.error_dir.mkdir(parents=True)
    (station.error_dir / "b.json").write_text("{}")
    (station.error_dir / "b.json.error.txt").write_text("reason: no good\n")
    (station.error_dir / "a.txt").write_text("x")  # reason not written yet
    assert read_errored([station]) == [ErroredFile("station-1", "b.json", "no good")]


def test_tally_adds_up_worker_processes() -> None:
    tally = Tally()
    tally.update("s", 10, ClientSnapshot(converted=3, uploaded=2, queued=3))
    tally.update("s", 10, ClientSnapshot(converted=5, uploaded=4, queued=5))
    tally.update("s", 10, ClientSnapshot(converted=4))  # never goes back within a process
    tally.update("s", 11, ClientSnapshot(converted=2, uploaded=1, queued=2))  # after a restart
    tally.update("s", None, ClientSnapshot(converted=99))
    tally.update("s", 12, None)
    assert tally.total("s", "converted") == 7
    assert tally.total("s", "uploaded") == 5
    assert tally.total("s", "queued") == 7
    assert tally.total("other", "converted") == 0
    assert tally.pids("s") == [10, 11]
