"""`pywats-client run`: run one instance in the foreground, without a supervisor.

Loads the config, takes the instance lock (a second ``run`` or a worker of the
same instance is refused, naming its pid), runs ``WATSClient`` until Ctrl+C or
SIGTERM (Ctrl+Break on Windows), then stops gracefully: no new files, in-flight
uploads finish within ``--stop-timeout``. A live status line is shown on a
terminal; otherwise a status line is logged every ``--status-interval`` s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

from rich.live import Live
from rich.text import Text

from pywats_client._logging import configure_logging, register_secret
from pywats_client.cli._output import EXIT_FAILED, EXIT_OK, err_console, error
from pywats_client.core.config import ClientConfig
from pywats_client.core.snapshot import ClientSnapshot

__all__ = ["format_status", "register"]

log = logging.getLogger("pywats_client.run")

EXAMPLE = """\
example:
  pywats-client init --config station-1.json --watch C:\\TestResults
  pywats-client run --config station-1.json
  pywats-client run --config station-1.json --log-level DEBUG --no-live

Stop with Ctrl+C (or SIGTERM): no new files are taken and in-flight uploads
finish within --stop-timeout seconds. A second Ctrl+C stops at once (exit 130);
queued reports stay queued and are sent at the next start. Exit codes: 0
stopped cleanly, 1 failed (e.g. the instance already runs elsewhere), 2 bad
config.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run one instance in the foreground",
        description="Run one station instance in the foreground (no supervisor): watch its "
        "folders, convert result files, queue and upload the reports.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, type=Path, help="the instance's JSON config")
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="least severe log level shown (default: the config's log_level)",
    )
    parser.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a live status line (default: on when stderr is a terminal)",
    )
    parser.add_argument(
        "--status-interval",
        type=float,
        default=30.0,
        metavar="S",
        help="without --live, log a status line every S seconds when something changed "
        "(default 30)",
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to let in-flight work finish when stopping (default 10)",
    )
    parser.set_defaults(handler=_handle)


class _CurrentStderr(io.TextIOBase):
    """Writes to whatever ``sys.stderr`` is now (rich's live display swaps it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def format_status(name: str, snap: ClientSnapshot) -> str:
    """One compact line: what came in, what is queued, what the server has, and trouble."""
    conn: str = snap.connection
    if snap.connection == "connected" and snap.server_version:
        conn = f"connected (WATS {snap.server_version})"
    parts = [
        f"{name}: {snap.files_seen} seen, {snap.converted} converted, {snap.errored} errored",
        f"| {snap.pending} pending, {snap.failed} failed",
        f"| {snap.uploaded} uploaded, {snap.uploads}",
        f"| {conn}",
    ]
    if snap.backpressure:
        parts.append("| QUEUE FULL: intake paused")
    if snap.warnings:
        parts.append(f"| {len(snap.warnings)} warning(s)")
    return " ".join(parts)


def _handle(args: argparse.Namespace) -> int:
    config = ClientConfig.load(args.config)  # ConfigError -> exit 2 (cli.main)
    from pywats_client.core.client import acquire_instance_lock

    lock = acquire_instance_lock(config)  # InstanceLockedError -> exit 1 naming the holder
    try:
        for secret in (config.api_token, config.effective_token()):
            register_secret(secret.get_secret_value())
        live = args.live if args.live is not None else err_console.is_terminal
        log_file = config.resolve_path(config.log_path) if config.log_path else None
        configure_logging(
            level=args.log_level or config.log_level,
            log_file=log_file,
            console=cast(IO[str], _CurrentStderr()),
            instance=config.instance_name,
        )
        return asyncio.run(_serve(config, live, args.status_interval, args.stop_timeout))
    finally:
        lock.release()


async def _serve(config: ClientConfig, live: bool, interval: float, stop_timeout: float) -> int:
    from pywats_client.core.client import WATSClient

    stop = asyncio.Event()
    restore = _install_stop_handlers(
        asyncio.get_running_loop(), stop, lambda: _say(stopping_now(config))
    )
    client = WATSClient(config)
    code = EXIT_OK
    try:
        await client.start()
        log.info("running %r; stop with Ctrl+C", config.instance_name)
        if live:
            with Live(
                Text(format_status(config.instance_name, client.snapshot())),
                console=err_console,
                refresh_per_second=2,
                redirect_stderr=True,
                transient=False,
            ) as display:
                code = await _watch(client, stop, interval, display)
        else:
            code = await _watch(client, stop, interval, None)
    finally:
        log.info("stopping %r (up to %g s)", config.instance_name, stop_timeout)
        try:
            await client.stop(timeout=stop_timeout)
        finally:  # also when a second Ctrl+C cut the stop short
            restore()
        final = client.snapshot()
        log.info("stopped: %s", format_status(config.instance_name, final))
    return code


async def _watch(client: Any, stop: asyncio.Event, interval: float, display: Live | None) -> int:
    """Show status until ``stop`` is set; returns the exit code."""
    name = client.config.instance_name
    last_line = ""
    last_log = time.monotonic()
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5 if display else min(interval, 1.0))
        snap = client.snapshot()
        line = format_status(name, snap)
        if display is not None:
            display.update(Text(line))
        elif line != last_line and time.monotonic() - last_log >= interval:
            log.info("%s", line)
            last_line, last_log = line, time.monotonic()
        reason = client.restart_required
        if reason:
            error(f"{name}: {reason}", "run it again (a service manager restarts it)")
            return EXIT_FAILED
    return EXIT_OK


def stopping_now(config: ClientConfig) -> str:
    """What a second stop request does, said when it happens.

    Nothing queued is lost by it: a report leaves ``pending/`` only once the
    server has answered for it (a claim in flight is only held in memory), and
    a source file only goes once its report is queued, so the next start sends
    what is left (a report the server got meanwhile is replaced, not doubled).
    """
    return (
        f"{config.instance_name}: stopping now, without waiting for uploads in flight; "
        f"queued reports stay queued in {config.queue_dir} and are sent at the next start\n"
    )


def _say(text: str) -> None:
    """Write ``text`` to stderr from a signal handler.

    ``os.write`` bypasses Python's buffered stream: a handler writing to it
    while the interrupted code was inside a write would fail (reentrant call).
    """
    data = text.encode(getattr(sys.stderr, "encoding", None) or "utf-8", errors="replace")
    try:
        os.write(sys.stderr.fileno(), data)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):  # no real fd
        sys.stderr.write(text)
        sys.stderr.flush()


def _install_stop_handlers(
    loop: asyncio.AbstractEventLoop,
    stop: asyncio.Event,
    on_force: Callable[[], None] | None = None,
) -> Any:
    """SIGINT/SIGTERM (and Ctrl+Break on Windows) set ``stop``; a second one exits at once.

    ``on_force()`` runs before that second one raises KeyboardInterrupt (exit 130).
    """
    names = ["SIGINT", "SIGTERM", "SIGBREAK"]
    signals = [getattr(signal, n) for n in names if hasattr(signal, n)]
    previous: dict[int, Any] = {}

    def request(signum: int, frame: object = None) -> None:
        if stop.is_set():
            if on_force is not None:
                on_force()
            raise KeyboardInterrupt  # second Ctrl+C: give up waiting
        loop.call_soon_threadsafe(stop.set)

    for sig in signals:
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, request)

    def restore() -> None:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)

    return restore
