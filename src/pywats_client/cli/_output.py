"""Console output shared by the CLI commands: rich for people, JSON for programs.

On a terminal, tables fit its width: identifiers and numbers stay whole and
only free text (errors, reasons) folds. Written to a file or a pipe, output is
laid out for a page as wide as it needs, so every row stays on one line,
complete and grep-able.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.markup import escape

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PIPE_WIDTH",
    "console",
    "err_console",
    "error",
    "print_json",
]

EXIT_OK = 0
#: The operation was attempted and failed (server refused, supervisor not running...).
EXIT_FAILED = 1
#: Bad usage or bad configuration: the operator must change the command or a file.
EXIT_USAGE = 2

#: The width output is laid out for when it goes to a file or a pipe. Tables
#: size to their content (never expand), so rows are only as long as they need.
PIPE_WIDTH = 4096


class _Console(Console):
    """A rich console whose width is :data:`PIPE_WIDTH` when it does not write to a terminal.

    rich would otherwise take the width of whatever terminal the command was
    started from (or 80): ``status | cat`` cut pids and dropped columns, and a
    redirected ``convert`` split JSON strings across lines.
    """

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self.is_terminal:
            return size
        return ConsoleDimensions(PIPE_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console: Console = _Console(highlight=False)
err_console: Console = _Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Machine-readable output: one JSON document on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def error(message: str, hint: str | None = None) -> None:
    """One clear error line on stderr, and what to do about it.

    The texts are printed as they are: a ``[[instance]]`` in a message is not
    rich markup.
    """
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    if hint:
        err_console.print(f"[dim]hint:[/] {escape(hint)}", markup=True, soft_wrap=True)
