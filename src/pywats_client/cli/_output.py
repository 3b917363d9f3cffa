"""Console output shared by the CLI commands: rich for people, JSON for programs."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "console", "err_console", "error", "print_json"]

EXIT_OK = 0
#: The operation was attempted and failed (server refused, supervisor not running...).
EXIT_FAILED = 1
#: Bad usage or bad configuration: the operator must change the command or a file.
EXIT_USAGE = 2

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Machine-readable output: one JSON document on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def error(message: str, hint: str | None = None) -> None:
    """One clear error line on stderr, and what to do about it."""
    err_console.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    if hint:
        err_console.print(f"[dim]hint:[/] {hint}", markup=True, soft_wrap=True)
