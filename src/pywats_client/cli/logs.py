"""`pywats-client logs`: print an instance's log, optionally following it.

Follow mode polls the file (no handle is held between polls, so the writer
can rotate it even on Windows) and notices rotation by identity or size,
first finishing the rotated-away file so no line is skipped.
"""

from __future__ import annotations

import argparse
import codecs
import io
import os
import sys
import time
from pathlib import Path
from typing import Any

from pywats_client.cli._output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, error
from pywats_client.cli._registry import add_registry_option, registry_path

POLL_INTERVAL = 0.5
_BLOCK = 64 * 1024


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "logs",
        help="show an instance's log",
        description="Print the last lines of an instance's log file (or the supervisor's "
        "with --supervisor); -f keeps printing new lines, across log rotation, until Ctrl+C.",
        epilog="examples:\n  pywats-client logs station-1 --registry instances.toml -n 100\n"
        "  pywats-client logs station-1 --registry instances.toml -f\n"
        "  pywats-client logs --supervisor --registry instances.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="instance name")
    add_registry_option(parser)
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    parser.add_argument(
        "-n", "--lines", type=int, default=50, metavar="N", help="lines to show (default 50)"
    )
    parser.add_argument(
        "--supervisor", action="store_true", help="show the supervisor's log instead"
    )
    parser.add_argument("--path", action="store_true", help="only print the log file's path")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    path = _log_path(args)
    if path is None:
        return EXIT_USAGE
    if args.path:
        sys.stdout.write(f"{path}\n")
        return EXIT_OK
    if not path.exists() and not args.follow:
        error(
            f"no log yet at {path}",
            "the instance has not run under this registry yet; start it with "
            "'pywats-client supervise --registry ...' (or use -f to wait for it)",
        )
        return EXIT_FAILED
    try:
        position = _print_tail(path, max(0, args.lines))
        if args.follow:
            follow(path, position, sys.stdout)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _log_path(args: argparse.Namespace) -> Path | None:
    from pywats_client._logging import instance_log_path, supervisor_log_path
    from pywats_client.core.registry import Registry
    from pywats_client.errors import ConfigError
    from pywats_client.supervisor._status import log_dir_in_use

    registry = Registry.load(registry_path(args), check_configs=False)
    log_dir = log_dir_in_use(registry)
    if args.supervisor:
        return supervisor_log_path(log_dir)
    if not args.name:
        error("name the instance (or use --supervisor)", f"instances: {_names(registry)}")
        return None
    entry = registry.get(args.name)
    if entry is None:
        error(
            f"no instance named {args.name!r} in {registry.path}",
            f"instances: {_names(registry)}",
        )
        return None
    try:
        config = registry.load_config(entry)
    except ConfigError:
        config = None  # default location; the config error shows in 'status'
    return instance_log_path(entry.name, config=config, log_dir=log_dir)


def _names(registry: Any) -> str:
    return ", ".join(registry.names) or "(none)"


def tail_bytes(path: Path, lines: int) -> tuple[bytes, int]:
    """The last ``lines`` lines of ``path`` and the file size they end at."""
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        if lines == 0:
            return b"", end
        data = b""
        pos = end
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(_BLOCK, pos)
            pos -= step
            handle.seek(pos)
            data = handle.read(step) + data
    chunks = data.splitlines(keepends=True)
    return b"".join(chunks[-lines:]), end


def _print_tail(path: Path, lines: int) -> int:
    try:
        data, end = tail_bytes(path, lines)
    except FileNotFoundError:
        return 0
    _write(sys.stdout, data.decode("utf-8", errors="replace").replace("\r\n", "\n"))
    return end


def _write(stream: Any, text: str) -> None:
    """Write log text; lines end in ``\n`` here, the stream adds what the platform uses.

    A console or pipe with a narrower code page than the log's UTF-8 (Windows)
    gets ``?`` for what it cannot show rather than an error.
    """
    if not text:
        return
    try:
        stream.write(text)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(encoding, errors="replace").decode(encoding))
    stream.flush()


def _identity(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def follow(
    path: Path,
    position: int,
    out: Any,
    *,
    interval: float = POLL_INTERVAL,
    stop: Any = None,
) -> None:
    """Print what is appended to ``path`` from ``position`` on, until ``stop()`` is true."""
    # Logs written on Windows end lines in CRLF; the decoder turns them into "\n"
    # even when a chunk ends between the two.
    decoder = io.IncrementalNewlineDecoder(
        codecs.getincrementaldecoder("utf-8")(errors="replace"), translate=True
    )
    ident: tuple[int, int] | None = None
    try:
        ident = _identity(path.stat())
    except FileNotFoundError:
        position = 0
    while stop is None or not stop():
        try:
            st = path.stat()
        except FileNotFoundError:  # between rotation's rename and the new file
            time.sleep(interval)
            continue
        if ident is not None and (_identity(st) != ident or st.st_size < position):
            rotated = path.with_name(path.name + ".1")
            try:
                if _identity(rotated.stat()) == ident:
                    _write(out, decoder.decode(_read_from(rotated, position)))
            except FileNotFoundError:
                pass
            _write(out, decoder.decode(b"", final=True))
            decoder.reset()
            position = 0
        ident = _identity(st)
        if st.st_size > position:
            data = _read_from(path, position)
            position += len(data)
            _write(out, decoder.decode(data))
        time.sleep(interval)


def _read_from(path: Path, position: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(position)
            return handle.read()
    except FileNotFoundError:
        return b""
