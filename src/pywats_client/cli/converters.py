"""`pywats-client converters`: list the converters found and where they came from."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pywats_client.cli._output import EXIT_FAILED, EXIT_OK, console, err_console, print_json
from pywats_client.cli.convert import add_source_options, build_manager

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "converters",
        help="list the converters found",
        description="List the converters a station would use: built-ins, installed packages\n"
        "(entry points) and the plugin files of its converter folder, with where each\n"
        "came from. Plugins that fail to load are listed with the reason (exit code 1).",
        epilog="examples:\n"
        "  pywats-client converters --config station-1.json\n"
        "  pywats-client converters --converter-path ./converters --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_source_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON for programs")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    manager = build_manager(args)
    problems = manager.load()
    converters = manager.converters
    if args.json:
        print_json(
            {
                "converters": [
                    {
                        "name": info.name,
                        "description": info.description,
                        "origin": info.origin,
                        "priority": info.priority,
                        "patterns": list(info.patterns),
                    }
                    for info in converters
                ],
                "problems": [
                    {
                        "origin": p.origin,
                        "file": str(p.file) if p.file else None,
                        "error": p.error,
                    }
                    for p in problems
                ],
            }
        )
        return EXIT_FAILED if problems else EXIT_OK
    # Names and priorities stay whole; an origin (a plugin's path), the patterns
    # and the description fold.
    table = Table(title=f"{len(converters)} converters", title_justify="left")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("origin", overflow="fold")
    table.add_column("priority", justify="right", no_wrap=True)
    table.add_column("patterns", overflow="fold")
    table.add_column("description", overflow="fold")
    for info in converters:
        table.add_row(
            Text(info.name),
            Text(info.origin),
            str(info.priority),
            Text(", ".join(info.patterns) or "(any file)"),
            Text(info.description),
        )
    console.print(table)
    for problem in problems:
        err_console.print(
            f"[bold red]not loaded:[/] {escape(str(problem))}", markup=True, soft_wrap=True
        )
    return EXIT_FAILED if problems else EXIT_OK
