"""The parser and error handling of the ``pywats-client`` command.

Each sub-command lives in its own module exposing ``register(subparsers)``,
which adds a parser whose ``handler(args) -> int`` runs the command. Errors
never reach the user as tracebacks: configuration problems exit 2, failed
operations exit 1, each with one line saying what is wrong and what to do.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
from collections.abc import Sequence

from pywats_client._version import __version__
from pywats_client.cli._output import EXIT_FAILED, EXIT_USAGE, error
from pywats_client.errors import ConfigError, PyWATSClientError

__all__ = ["build_parser", "main"]

#: Sub-command modules in the order ``--help`` lists them.
COMMAND_MODULES = (
    "demo",
    "run",
    "supervise",
    "status",
    "control",
    "logs",
    "queue",
    "convert",
    "converters",
    "init",
    "server",
)

DEBUG_ENV_VAR = "PYWATS_DEBUG"


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one clear line (and the usage) on bad usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        error(message, f"run '{self.prog} --help' for the options")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pywats-client",
        description="Station-side WATS client: watch tester folders, convert result files, "
        "queue them durably and upload them to a WATS server.",
        epilog="Start with 'pywats-client demo' to see it work with no WATS account.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"pywats_client.cli.{name}")
        module.register(subparsers)
    return parser


def _escape_unencodable_output() -> None:
    """Print what the console's code page cannot encode as ``\\uXXXX``.

    A redirected stdout on Windows is written in the ANSI code page (cp1252):
    a serial number or path outside it would otherwise end the command half-way
    with a UnicodeEncodeError. The escape is also valid inside JSON strings.
    """
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pywats-client``; returns the process exit code."""
    _escape_unencodable_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(handler(args))
    except ConfigError as exc:
        error(str(exc))
        return EXIT_USAGE
    except PyWATSClientError as exc:
        error(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a file or folder the command needs: not a bug
        error(str(exc), "check that path: its permissions, free space, or a program holding it")
        return EXIT_FAILED
    except Exception as exc:
        if os.environ.get(DEBUG_ENV_VAR):
            raise
        error(
            f"unexpected {type(exc).__name__}: {exc}",
            f"this is a bug; set {DEBUG_ENV_VAR}=1 to see the traceback and report it",
        )
        return EXIT_FAILED
