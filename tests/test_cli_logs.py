"""`pywats-client logs`: tail, follow across rotation, clear errors."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import logging.handlers
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pywats_client.cli import main
from pywats_client.cli.logs import _write, follow, tail_bytes
from pywats_client.supervisor import list_instances
from pywats_client.supervisor._statusfile import STATUS_FORMAT, STATUS_NAME, write_status
from tests.helpers import wait_until


def make_registry(tmp_path: Path) -> Path:
    (tmp_path / "a.json").write_text(json.dumps({"instance_name": "a", "queue_path": "qa"}))
    (tmp_path / "b.json").write_text(json.dumps({"queue_path": "qb", "log_path": "b-own.log"}))
    path = tmp_path / "instances.toml"
    path.write_text(
        '[supervisor]\nlog_dir = "logs"\n'
        '[[instance]]\nname = "a"\nconfig = "a.json"\n'
        '[[instance]]\nname = "b"\nconfig = "b.json"\n'
    )
    return path


def test_tail_bytes_reads_only_the_end_of_big_files(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_bytes(b"".join(f"line {i}\n".encode() for i in range(50_000)))
    data, end = tail_bytes(path, 3)
    assert data == b"line 49997\nline 49998\nline 49999\n"
    assert end == path.stat().st_size
    assert tail_bytes(path, 0) == (b"", end)
    short = tmp_path / "short.log"
    short.write_bytes(b"only\nno newline at end")
    assert tail_bytes(short, 10)[0] == b"only\nno newline at end"


def test_logs_prints_the_last_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = make_registry(tmp_path)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text("".join(f"entry {i}\n" for i in range(10)))
    assert main(["logs", "a", "--registry", str(registry), "-n", "2"]) == 0
    assert capsys.readouterr().out == "entry 8\nentry 9\n"


def test_logs_paths_follow_the_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = make_registry(tmp_path)
    assert main(["logs", "a", "--registry", str(registry), "--path"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "logs" / "a.log")
    assert main(["logs", "b", "--registry", str(registry), "--path"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "b-own.log")
    assert main(["logs", "--supervisor", "--registry", str(registry), "--path"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "logs" / "supervisor.log")


def test_logs_are_found_where_the_supervisor_wrote_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No log_dir set and a supervisor running as a service account: its folder, not ours."""
    registry = tmp_path / "instances.toml"
    registry.write_text('[[instance]]\nname = "a"\nconfig = "a.json"\n')
    (tmp_path / "a.json").write_text(json.dumps({"queue_path": "qa"}))
    service_logs = tmp_path / "systemprofile" / "Logs"
    document = {"format": STATUS_FORMAT, "supervisor": {"log_dir": str(service_logs)}}
    (tmp_path / ".pywats").mkdir()
    write_status(tmp_path / ".pywats" / STATUS_NAME, document)

    assert main(["logs", "a", "--registry", str(registry), "--path"]) == 0
    assert capsys.readouterr().out.strip() == str(service_logs / "a.log")
    assert main(["logs", "--supervisor", "--registry", str(registry), "--path"]) == 0
    assert capsys.readouterr().out.strip() == str(service_logs / "supervisor.log")
    (instance,) = list_instances(registry)
    assert instance.log_path == service_logs / "a.log"


def test_logs_errors_say_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = make_registry(tmp_path)
    assert main(["logs", "zz", "--registry", str(registry)]) == 2
    err = capsys.readouterr().err
    assert "no instance named 'zz'" in err and "a, b" in err
    assert main(["logs", "a", "--registry", str(registry)]) == 1
    err = capsys.readouterr().err
    assert "no log yet" in err and "supervise" in err
    assert main(["logs", "--registry", str(tmp_path / "nope.toml")]) == 2


@contextlib.contextmanager
def following(path: Path) -> Iterator[io.StringIO]:
    """``follow(path)`` in a thread for the ``with`` block; yields what it printed."""
    out = io.StringIO()
    done = threading.Event()
    follower = threading.Thread(
        target=follow, args=(path, 0, out), kwargs={"interval": 0.01, "stop": done.is_set}
    )
    follower.start()
    try:
        yield out
    finally:
        done.set()
        follower.join(5)


def test_follow_prints_every_line_once_across_rotations(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=400, backupCount=3)
    handler.setFormatter(logging.Formatter("%(message)s"))
    writer = logging.Logger("writer")
    writer.addHandler(handler)
    writer.info("line 0000")
    try:
        with following(path) as out:
            for i in range(1, 120):
                writer.info("line %04d", i)
                if i % 10 == 0:  # give the follower a chance between rotations
                    wait_until(lambda n=i: f"line {n:04d}" in out.getvalue(), 20)
            wait_until(lambda: "line 0119" in out.getvalue(), 20, message="the last line")
    finally:
        handler.close()
    lines = out.getvalue().splitlines()
    assert lines == [f"line {i:04d}" for i in range(120)]
    assert (tmp_path / "a.log.1").exists()  # it did rotate


def test_follow_turns_windows_line_ends_into_one_newline_even_split(tmp_path: Path) -> None:
    """A log written on Windows ends lines in CRLF; text-mode stdout adds its own CR."""
    path = tmp_path / "a.log"
    path.write_bytes(b"first\r")  # the CR of a CRLF, the LF not written yet
    with following(path) as out:
        # the CR is held back until the decoder sees what follows it
        wait_until(lambda: out.getvalue() == "first", 20, message=lambda: repr(out.getvalue()))
        with path.open("ab") as handle:
            handle.write(b"\nsecond \xe2\x9c\x93\r\n")
        wait_until(lambda: "second" in out.getvalue(), 20, message=lambda: repr(out.getvalue()))
    assert out.getvalue() == "first\nsecond \u2713\n"


def test_a_narrow_code_page_gets_question_marks_not_an_error(tmp_path: Path) -> None:
    """Redirected stdout on Windows uses the ANSI code page with strict errors."""
    raw = io.BytesIO()
    narrow = io.TextIOWrapper(raw, encoding="cp1252", errors="strict")
    _write(narrow, "unit \u2713 ok, \ufffd bad byte\n")
    assert raw.getvalue() == b"unit ? ok, ? bad byte\n"
