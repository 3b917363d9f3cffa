"""Logging for the supervisor and each instance: rotating files, optional JSON lines.

Each worker writes its own file (one writer per file, so rotation is safe):
``log_path`` from the instance config if set, else ``<log_dir>/<name>.log``
where ``log_dir`` is ``[supervisor] log_dir`` from the registry or the
platform's log folder (platformdirs). Every record passes through
:func:`redact`, so a registered secret (the API token) never reaches a log
line, not even inside an exception message or traceback.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import logging
import logging.handlers
import os
import stat
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from pywats_client._fsutil import OWNER_ONLY_FILE, ensure_private_dir

if TYPE_CHECKING:
    from pywats_client.core.config import ClientConfig
    from pywats_client.core.registry import Registry

__all__ = [
    "APP_NAME",
    "LOG_BACKUPS",
    "LOG_MAX_BYTES",
    "SUPERVISOR_LOG_NAME",
    "JsonLinesFormatter",
    "LogFormat",
    "RedactingFormatter",
    "configure_logging",
    "default_log_dir",
    "instance_log_path",
    "redact",
    "register_secret",
    "registry_log_dir",
    "supervisor_log_path",
]

APP_NAME = "pywats-client"
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5
SUPERVISOR_LOG_NAME = "supervisor.log"
REDACTED = "***"
#: Secrets shorter than this are not redacted: replacing "a" everywhere would
#: garble logs and hide nothing (tokens are far longer).
_MIN_SECRET_LEN = 4
#: Name of the handlers this module installs, so reconfiguring replaces them.
_HANDLER_TAG = "_pywats_handler"

LogFormat = Literal["text", "json"]

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Redact ``value`` (and its base64-decoded form) from every log line from now on."""
    value = value.strip()
    if len(value) < _MIN_SECRET_LEN:
        return
    found = {value}
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        decoded = ""
    if len(decoded) >= _MIN_SECRET_LEN:
        found.add(decoded)
    with _secrets_lock:
        _secrets.update(found)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


# --- where logs go -----------------------------------------------------------------


def default_log_dir() -> Path:
    """The platform's per-user log folder (e.g. ``%LOCALAPPDATA%\\pywats-client\\Logs``)."""
    from platformdirs import user_log_path

    return user_log_path(APP_NAME, appauthor=False)


def registry_log_dir(registry: Registry) -> Path:
    """``[supervisor] log_dir`` (relative to the registry) or the platform's log folder."""
    configured = registry.supervisor.log_dir
    return registry.resolve(configured) if configured is not None else default_log_dir()


def instance_log_path(name: str, *, config: ClientConfig | None, log_dir: Path | None) -> Path:
    """Log file of instance ``name``: the config's ``log_path``, else ``<log_dir>/<name>.log``."""
    if config is not None and config.log_path is not None:
        return config.resolve_path(config.log_path)
    return (log_dir if log_dir is not None else default_log_dir()) / f"{name}.log"


def supervisor_log_path(log_dir: Path) -> Path:
    return log_dir / SUPERVISOR_LOG_NAME


# --- formatting --------------------------------------------------------------------


class RedactingFormatter(logging.Formatter):
    """Plain text lines, secrets removed (also from tracebacks)."""

    def __init__(self, instance: str | None = None) -> None:
        prefix = f"[{instance}] " if instance else ""
        super().__init__(f"%(asctime)s %(levelname)-7s {prefix}%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line (ts, level, logger, instance, pid, msg, exc), secrets removed."""

    def __init__(self, instance: str | None = None) -> None:
        super().__init__()
        self._instance = instance

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "msg": redact(record.getMessage()),
        }
        if self._instance:
            data["instance"] = self._instance
        if record.exc_info:
            data["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            data["exc"] = redact(record.exc_text)
        return json.dumps(data, ensure_ascii=False)


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Rotating file handler whose files are created owner-only (logs name products/serials).

    Rotation is all or nothing: the live log is renamed aside, the backups move
    up one (the oldest is dropped only once every move worked) and the live log
    becomes ``.1``. On Windows a rename fails while another program (a tail
    tool, an editor) holds that file open; the standard handler would then drop
    the record and shift - so delete - backups again on every record. Here the
    moves made are undone, the log keeps growing, and rotation is tried again
    :data:`ROLLOVER_RETRY` seconds later. With ``backupCount`` 0 the log is never
    rotated, as with the standard handler.
    """

    ROLLOVER_RETRY = 30.0
    _rollover_blocked_until = 0.0
    #: Bytes in the live log, counted here: the standard check stats the
    #: file twice and seeks per record, each a wait for the interpreter lock
    #: again in a busy station's converter threads.
    _size = 0
    _regular = True  # never rotate a device or pipe (bpo-45401)
    _formatted: tuple[logging.LogRecord, str] | None = None

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if self.backupCount <= 0 or self.maxBytes <= 0 or not self._regular:
            return False
        if time.monotonic() < self._rollover_blocked_until:
            return False
        if self.stream is None:
            self.stream = self._open()
        return self._size + self._bytes_of(self.format(record)) >= self.maxBytes

    def emit(self, record: logging.LogRecord) -> None:
        try:
            super().emit(record)  # a record that cannot be formatted goes to handleError
            if self._formatted is not None and self._formatted[0] is record:
                self._size += self._bytes_of(self._formatted[1])
        finally:
            self._formatted = None  # hold no record (its arguments, a traceback) past this

    def format(self, record: logging.LogRecord) -> str:
        """Formatted once per record (the rollover check and the write both need it)."""
        last = self._formatted
        if last is not None and last[0] is record:
            return last[1]
        text = super().format(record)
        self._formatted = (record, text)
        return text

    def _bytes_of(self, text: str) -> int:
        """What writing ``text`` and its line end adds to the file."""
        line = text + self.terminator
        size = len(line)
        if not line.isascii():
            size = len(line.encode(self.encoding or "utf-8", self.errors or "strict"))
        return size + line.count("\n") * (len(os.linesep) - 1)  # "\r\n" on Windows

    def doRollover(self) -> None:
        if self.stream:
            self.stream.close()
            self.stream = None
        live = Path(self.baseFilename)
        aside = live.with_name(live.name + ".rotating")
        try:
            os.replace(live, aside)
        except FileNotFoundError:  # removed by hand: nothing to rotate
            pass
        except OSError:  # held open by another program (Windows)
            self._rollover_blocked_until = time.monotonic() + self.ROLLOVER_RETRY
        else:
            try:
                self._shift_backups(aside)
            except OSError:  # a backup is held open: keep the log whole, try later
                with contextlib.suppress(OSError):
                    os.replace(aside, live)
                self._rollover_blocked_until = time.monotonic() + self.ROLLOVER_RETRY
        self.stream = self._open()

    def _shift_backups(self, aside: Path) -> None:
        """``.1`` -> ``.2`` ... , the oldest dropped, ``aside`` -> ``.1``; undone on failure."""
        backups = [Path(f"{self.baseFilename}.{n}") for n in range(1, self.backupCount + 1)]
        dropped = backups[-1].with_name(backups[-1].name + ".dropping")
        steps = [(backups[-1], dropped)]
        steps += [(backups[n - 1], backups[n]) for n in range(len(backups) - 1, 0, -1)]
        steps.append((aside, backups[0]))
        done: list[tuple[Path, Path]] = []
        try:
            for source, target in steps:
                if source.exists():
                    os.replace(source, target)
                    done.append((source, target))
        except OSError:
            for source, target in reversed(done):
                with contextlib.suppress(OSError):
                    os.replace(target, source)
            raise
        with contextlib.suppress(OSError):
            dropped.unlink()

    def _open(self) -> io.TextIOWrapper:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
        fd = os.open(self.baseFilename, flags, OWNER_ONLY_FILE)
        found = os.fstat(fd)
        self._size, self._regular = found.st_size, stat.S_ISREG(found.st_mode)
        return io.TextIOWrapper(
            io.FileIO(fd, "a"), encoding=self.encoding or "utf-8", errors=self.errors
        )


def _formatter(fmt: LogFormat, instance: str | None) -> logging.Formatter:
    return JsonLinesFormatter(instance) if fmt == "json" else RedactingFormatter(instance)


def configure_logging(
    *,
    level: str | int = "INFO",
    log_file: Path | None = None,
    fmt: LogFormat = "text",
    console: IO[str] | bool = False,
    instance: str | None = None,
    max_bytes: int = LOG_MAX_BYTES,
    backups: int = LOG_BACKUPS,
) -> None:
    """(Re)configure the root logger: a rotating ``log_file`` and/or a console stream.

    Replaces handlers installed by an earlier call (a worker reconfigures once
    its config is known). An unwritable ``log_file`` falls back to stderr with
    a warning rather than stopping the station.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_TAG, False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    # httpx logs every request at INFO: one line per upload drowns the station log.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    handlers: list[logging.Handler] = []
    problem: str | None = None
    if log_file is not None:
        try:
            ensure_private_dir(log_file.parent)
            handlers.append(
                _PrivateRotatingFileHandler(
                    log_file,
                    maxBytes=max_bytes,
                    backupCount=backups,
                    encoding="utf-8",
                    errors="backslashreplace",  # a file name that is not valid UTF-8
                )
            )
        except OSError as exc:
            problem = f"cannot write log file {log_file} ({exc.strerror}); logging to stderr"
            console = console or True
    if console:
        stream = sys.stderr if console is True else console
        handlers.append(logging.StreamHandler(stream))
    for handler in handlers:
        handler.setFormatter(_formatter(fmt, instance))
        setattr(handler, _HANDLER_TAG, True)
        root.addHandler(handler)
    logging.captureWarnings(True)
    if problem:
        logging.getLogger(__name__).warning(problem)
