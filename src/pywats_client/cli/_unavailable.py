"""Commands whose engine has not landed yet say so instead of pretending."""

from __future__ import annotations

import argparse
from typing import Any

from pywats_client.cli._output import EXIT_USAGE, error

__all__ = ["register_unavailable"]


def register_unavailable(subparsers: Any, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=f"{help_text} (not available yet)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def handler(args: argparse.Namespace) -> int:
        error(
            f"'pywats-client {name}' is not available yet in this version",
            "see README.md for the commands that work today",
        )
        return EXIT_USAGE

    parser.set_defaults(handler=handler)
