"""`pywats-client supervise`: run the supervisor for an instances registry (foreground)."""

from __future__ import annotations

import argparse
import threading
from typing import Any

from pywats_client._logging import configure_logging, supervisor_log_path
from pywats_client.cli._output import err_console
from pywats_client.cli._registry import add_registry_option, registry_path

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "supervise",
        help="run the supervisor for an instances registry",
        description="Run one worker process per enabled instance of the registry, in the "
        "foreground. Workers that crash or stop sending heartbeats are restarted with "
        "backoff; editing the registry or a config file (or SIGHUP) applies the change to "
        "the instances concerned only. Ctrl+C or SIGTERM stops every worker gracefully; a "
        "second Ctrl+C kills them at once. Status: 'pywats-client status'.",
        epilog="example: pywats-client supervise --registry instances.toml --log-level INFO",
    )
    add_registry_option(parser)
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        help="log level of the supervisor and of every instance "
        "(default: INFO for the supervisor, each config's log_level for its instance)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="log line format, json = one JSON object per line "
        "(default: [supervisor] log_format, text)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pywats_client.supervisor import Supervisor

    supervisor = Supervisor(
        registry_path(args), log_level=args.log_level, log_format=args.log_format
    )
    settings = supervisor.settings
    configure_logging(
        level=args.log_level or "INFO",
        log_file=supervisor_log_path(supervisor.log_dir),
        fmt=supervisor.log_format,
        console=True,
        max_bytes=settings.log_max_bytes,
        backups=settings.log_backups,
    )
    banner = (
        f"supervising {len(supervisor.registry.instances)} instance(s) from "
        f"{supervisor.registry_path}; logs in {supervisor.log_dir}; Ctrl+C to stop"
    )
    return run_announced(supervisor, banner)


#: How often the banner thread looks whether the supervisor got going or gave up.
_BANNER_POLL_S = 0.1


def run_announced(supervisor: Any, banner: str) -> int:
    """``supervisor.run()``, printing ``banner`` once it really runs.

    The supervisor takes its lock inside ``run()`` and sets ``ready`` once it
    holds it and has started its instances; a second supervisor on the same
    registry is refused there and so never prints a "supervising ..." line.
    """
    finished = threading.Event()

    def announce() -> None:
        while not supervisor.ready.wait(_BANNER_POLL_S):
            if finished.is_set():
                return  # refused (another supervisor holds the lock) or failed to start
        err_console.print(banner, markup=False, soft_wrap=True)

    thread = threading.Thread(target=announce, name="supervise-banner", daemon=True)
    thread.start()
    try:
        return int(supervisor.run())
    finally:
        finished.set()
        thread.join()
