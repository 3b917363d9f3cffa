"""Per-instance log files: location, rotation, JSON lines, and no token ever."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pywats_client import _logging
from pywats_client._logging import (
    configure_logging,
    default_log_dir,
    instance_log_path,
    redact,
    register_secret,
    registry_log_dir,
)
from pywats_client.core import ClientConfig, Registry

TOKEN = "dXNlcjpzM2NyZXQtcGFzc3dvcmQ="  # base64 of "user:s3cret-password"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    secrets = set(_logging._secrets)
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    _logging._secrets.clear()
    _logging._secrets.update(secrets)


def _registry(tmp_path: Path, supervisor: str = "") -> Registry:
    (tmp_path / "a.json").write_text(json.dumps({"instance_name": "a", "queue_path": "qa"}))
    path = tmp_path / "instances.toml"
    path.write_text(f'{supervisor}\n[[instance]]\nname = "a"\nconfig = "a.json"\n')
    return Registry.load(path)


def test_log_goes_to_the_platform_folder_unless_configured(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    assert registry_log_dir(registry) == default_log_dir()
    assert "pywats-client" in str(default_log_dir())
    assert instance_log_path("a", config=None, log_dir=None) == default_log_dir() / "a.log"


def test_registry_log_dir_is_relative_to_the_registry(tmp_path: Path) -> None:
    registry = _registry(tmp_path, '[supervisor]\nlog_dir = "logs"\n')
    log_dir = registry_log_dir(registry)
    assert log_dir == tmp_path / "logs"
    config = registry.load_config(registry.instances[0])
    assert instance_log_path("a", config=config, log_dir=log_dir) == tmp_path / "logs" / "a.log"


def test_config_log_path_wins_and_is_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "a.json").write_text(json.dumps({"log_path": "mylogs/a.txt"}))
    config = ClientConfig.load(tmp_path / "st" / "a.json")
    path = instance_log_path("a", config=config, log_dir=tmp_path / "logs")
    assert path == tmp_path / "st" / "mylogs" / "a.txt"


def test_file_is_written_owner_only_and_rotates(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "a.log"
    configure_logging(level="INFO", log_file=log_file, max_bytes=2000, backups=2, instance="a")
    log = logging.getLogger("pywats_client.test")
    for i in range(200):
        log.info("line %d %s", i, "x" * 40)
    log.debug("not written at INFO")
    assert log_file.exists()
    assert (tmp_path / "logs" / "a.log.1").exists()
    assert (tmp_path / "logs" / "a.log.2").exists()
    assert not (tmp_path / "logs" / "a.log.3").exists()  # backups capped
    assert log_file.stat().st_size <= 2000
    text = log_file.read_text(encoding="utf-8")
    assert "line 199" in text
    assert "[a] pywats_client.test" in text
    assert "not written" not in text
    if sys.platform != "win32":
        for path in (log_file, tmp_path / "logs" / "a.log.1"):
            assert path.stat().st_mode & 0o777 == 0o600


def _rotating_log(tmp_path: Path, backups: int, lines: int) -> tuple[Path, logging.Logger]:
    """A configured 2,000-byte rotating log with ``lines`` lines written."""
    log_file = tmp_path / "logs" / "a.log"
    configure_logging(level="INFO", log_file=log_file, max_bytes=2000, backups=backups)
    log = logging.getLogger("pywats_client.test")
    for i in range(lines):
        log.info("before %d %s", i, "x" * 40)
    return log_file, log


def _backups(log_file: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in log_file.parent.glob(log_file.name + ".*")}


def _held_open(monkeypatch: pytest.MonkeyPatch, path: Path) -> dict[str, bool]:
    """Renames of ``path`` fail as on Windows while another program has it open."""
    real_replace = os.replace
    held = {"open": True}

    def replace(source: object, target: object) -> None:
        if held["open"] and Path(str(source)) == path:
            raise PermissionError(13, "The process cannot access the file", str(source))
        real_replace(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(_logging.os, "replace", replace)
    return held


def _retry_rotation_now() -> None:
    """Skip the wait before the next rotation attempt."""
    [handler] = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, _logging._PrivateRotatingFileHandler)
    ]
    handler._rollover_blocked_until = 0.0


def test_a_log_held_open_elsewhere_keeps_every_line_and_every_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows: the live log cannot be renamed while a tail tool holds it open."""
    log_file, log = _rotating_log(tmp_path, backups=2, lines=100)
    backups = _backups(log_file)
    assert set(backups) == {"a.log.1", "a.log.2"}
    held = _held_open(monkeypatch, log_file)
    for i in range(100):
        log.info("held %d %s", i, "x" * 40)
    text = log_file.read_text(encoding="utf-8")
    assert all(f"held {i} " in text for i in range(100))  # nothing dropped
    assert _backups(log_file) == backups

    held["open"] = False  # the tail tool is closed; the next attempt is due
    _retry_rotation_now()
    log.info("after %s", "x" * 40)
    assert "held 99 " in (tmp_path / "logs" / "a.log.1").read_text(encoding="utf-8")
    assert log_file.stat().st_size <= 2000


def test_a_backup_held_open_elsewhere_costs_no_backup_and_no_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows: an editor has ``a.log.1`` open, so it cannot move up to ``a.log.2``."""
    log_file, log = _rotating_log(tmp_path, backups=3, lines=150)
    backups = _backups(log_file)
    assert set(backups) == {"a.log.1", "a.log.2", "a.log.3"}
    _held_open(monkeypatch, log_file.with_name("a.log.1"))
    for attempt in range(4):  # the handler tries again after each wait
        _retry_rotation_now()
        for i in range(20):
            log.info("held %d.%d %s", attempt, i, "x" * 40)
    assert _backups(log_file) == backups
    text = log_file.read_text(encoding="utf-8")
    assert all(f"held {a}.{i} " in text for a in range(4) for i in range(20))


def test_one_backup_rotates_over_the_old_one(tmp_path: Path) -> None:
    log_file, _ = _rotating_log(tmp_path, backups=1, lines=150)
    assert sorted(p.name for p in log_file.parent.iterdir()) == ["a.log", "a.log.1"]
    assert "before 149 " in log_file.read_text(encoding="utf-8")
    assert log_file.stat().st_size <= 2000


def test_rotation_counts_what_the_log_held_before_the_station_started(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "a.log"
    log_file.parent.mkdir()
    log_file.write_text("an earlier run\n" + "y" * 1900 + "\n", encoding="utf-8")
    configure_logging(level="INFO", log_file=log_file, max_bytes=2000, backups=2)
    logging.getLogger("pywats_client.test").info("first line of this run %s", "x" * 100)
    assert "an earlier run" in (tmp_path / "logs" / "a.log.1").read_text(encoding="utf-8")
    assert "first line of this run" in log_file.read_text(encoding="utf-8")


def test_a_log_file_that_is_not_a_regular_file_is_never_rotated(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs a named pipe")
    pipe = tmp_path / "logs" / "pipe.log"
    pipe.parent.mkdir()
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # so the handler can open it
    try:
        configure_logging(level="INFO", log_file=pipe, max_bytes=100, backups=2)
        log = logging.getLogger("pywats_client.test")
        for i in range(5):
            log.info("line %d %s", i, "x" * 40)
            os.read(reader, 65536)
        assert sorted(p.name for p in pipe.parent.iterdir()) == ["pipe.log"]
    finally:
        configure_logging(level="INFO", log_file=None)
        os.close(reader)


def test_rotation_counts_bytes_of_text_that_is_not_ascii(tmp_path: Path) -> None:
    log_file, _ = _rotating_log(tmp_path, backups=2, lines=0)
    log = logging.getLogger("pywats_client.test")
    for i in range(60):
        log.info("line %d: Prüfstand 測試站 %s", i, "ß" * 20)
    assert (tmp_path / "logs" / "a.log.1").exists()
    for path in (log_file, tmp_path / "logs" / "a.log.1"):
        assert path.stat().st_size <= 2000


def test_a_log_call_with_bad_arguments_never_raises_into_the_station(tmp_path: Path) -> None:
    log_file, _ = _rotating_log(tmp_path, backups=2, lines=1)
    [handler] = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, _logging._PrivateRotatingFileHandler)
    ]

    def record(msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord("pywats_client.test", logging.INFO, __file__, 1, msg, args, None)

    handler.handle(record("a count: %d", "not a number"))  # handleError reports it
    handler.handle(record("after it"))
    assert "after it" in log_file.read_text(encoding="utf-8")


def test_no_backups_means_no_rotation(tmp_path: Path) -> None:
    log_file, _ = _rotating_log(tmp_path, backups=0, lines=150)
    assert [p.name for p in log_file.parent.iterdir()] == ["a.log"]
    assert "before 0 " in log_file.read_text(encoding="utf-8")


def test_reconfiguring_replaces_handlers_instead_of_duplicating(tmp_path: Path) -> None:
    first, second = tmp_path / "one.log", tmp_path / "two.log"
    configure_logging(log_file=first)
    configure_logging(log_file=second)
    logging.getLogger("t").warning("once")
    assert "once" not in first.read_text(encoding="utf-8")
    assert second.read_text(encoding="utf-8").count("once") == 1


def test_json_lines_format(tmp_path: Path) -> None:
    log_file = tmp_path / "a.jsonl"
    configure_logging(log_file=log_file, fmt="json", instance="station-1")
    log = logging.getLogger("pywats_client.x")
    log.warning("hello %s", "world")
    try:
        raise ValueError("bad thing")
    except ValueError:
        log.exception("failed")
    lines = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    assert [line["msg"] for line in lines] == ["hello world", "failed"]
    first = lines[0]
    assert first["level"] == "WARNING"
    assert first["logger"] == "pywats_client.x"
    assert first["instance"] == "station-1"
    assert first["pid"] == os.getpid()
    assert first["ts"].endswith("Z")
    assert "ValueError: bad thing" in lines[1]["exc"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_token_never_reaches_a_log_line(tmp_path: Path, fmt: _logging.LogFormat) -> None:
    log_file = tmp_path / "a.log"
    stream = io.StringIO()
    configure_logging(log_file=log_file, fmt=fmt, console=stream)
    register_secret(TOKEN)
    log = logging.getLogger("pywats_client.leak")
    log.info("token is %s", TOKEN)
    log.info(f"header Authorization: Basic {TOKEN}")
    log.info("decoded user:s3cret-password")
    try:
        raise RuntimeError(f"server refused {TOKEN}")
    except RuntimeError:
        log.exception("upload failed")
    for text in (log_file.read_text(encoding="utf-8"), stream.getvalue()):
        assert TOKEN not in text
        assert "s3cret-password" not in text
        assert text.count("***") >= 4


def test_redact_ignores_trivial_secrets() -> None:
    register_secret("")
    register_secret("ab")
    assert redact("a b ab") == "a b ab"
    register_secret("not-base64-secret!")
    assert redact("x not-base64-secret! y") == "x *** y"


def test_unwritable_log_file_falls_back_to_stderr(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    stream = io.StringIO()
    configure_logging(log_file=blocker / "a.log", console=stream)
    logging.getLogger("t").error("still visible")
    output = stream.getvalue()
    assert "cannot write log file" in output
    assert "still visible" in output
