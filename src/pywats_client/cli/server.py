"""`pywats-client server`: run the local WATS stand-in server in the foreground.

Prints ``listening on http://HOST:PORT`` (flushed, so a parent process or a
test can wait for it) and, with ``--port-file``, writes the port there once
the socket listens. Runs until SIGTERM/SIGINT (Ctrl+C or Ctrl+Break on Windows).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pywats_client._net import is_loopback
from pywats_client.cli._output import EXIT_FAILED, EXIT_OK, error

__all__ = ["register"]


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0-65535; 0 = any free)")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "server",
        help="run the local WATS stand-in server (demo, tests, benchmarks)",
        description="A local WATS-compatible server: POST /api/Report/WSJF, "
        "GET /api/App/Version, GET /api/Report/Wsjf/{id}, plus /standin/ endpoints "
        "for tests (reports, stats, faults, reset).",
        epilog="example: pywats-client server --port 8765 --token demo-token",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument(
        "--port-file", type=Path, help="write the port number here once the server listens"
    )
    parser.add_argument(
        "--token",
        help="the API token clients must send as 'Authorization: Basic <token>' "
        "(default: $PYWATS_STANDIN_TOKEN, else a random token that is printed)",
    )
    parser.add_argument(
        "--data", type=Path, help="folder for the report database (default: a temp folder)"
    )
    parser.add_argument(
        "--parent-pid",
        type=int,
        help="stop when the process with this pid exits (set by programs that start the "
        "server, so that it never outlives them)",
    )
    parser.set_defaults(handler=_handle)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _handle(args: argparse.Namespace) -> int:
    from pywats_client.standin import TOKEN_ENV_VAR, StandinServer, run

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    token = args.token or os.environ.get(TOKEN_ENV_VAR) or None

    def ready(server: StandinServer) -> None:
        if server.token_generated:
            _say(f"token: {server.token}")
        _say(f"data: {server.data_dir}")
        if not is_loopback(args.host):
            _say(f"warning: {args.host} is reachable from the network; use 127.0.0.1 unless needed")
        _say(f"listening on {server.url}")

    try:
        run(
            args.host,
            args.port,
            token,
            args.data,
            port_file=args.port_file,
            on_ready=ready,
            parent_pid=args.parent_pid,
        )
    except OSError as exc:
        error(
            f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}",
            "choose another --port (0 picks a free one) or check the --data folder",
        )
        return EXIT_FAILED
    except KeyboardInterrupt:
        pass
    _say("stopped")
    return EXIT_OK
