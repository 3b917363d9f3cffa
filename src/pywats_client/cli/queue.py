"""`pywats-client queue`: list queued reports, move failed ones back to pending.

Both work while the instance's worker runs: listing only reads, and requeue
writes each report into ``pending/`` by an atomic rename before it removes
the failed copy, then signals the worker to look at once. The instance is
named by its config (``--config``) or by its name in the registry.
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from pywats_client.cli._layout import Fit, free_text_width
from pywats_client.cli._output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    console,
    error,
    print_json,
)
from pywats_client.cli._registry import add_registry_option, instance_config
from pywats_client.core._worker_pid import running_worker_pid
from pywats_client.core.config import ClientConfig
from pywats_client.queue import QueueItem, QueueState, QueueStore
from pywats_client.queue._envelope import iso_to_epoch

__all__ = ["register"]

_TABLE_LIMIT = 200
#: Below this width for the last error, reports are listed one block each.
_ERROR_MIN = 40

_LIST_EXAMPLES = """examples:
  pywats-client queue list --config station-1/config.json
  pywats-client queue list --config station-1/config.json --state failed
  pywats-client queue list --config station-1/config.json --json --limit 0
  pywats-client queue list station-1 --registry instances.toml --state failed
"""

_REQUEUE_EXAMPLES = """examples:
  pywats-client queue requeue --config station-1/config.json --all-failed
  pywats-client queue requeue --config station-1/config.json 0b6c3a52-5f41-4d7e-9a57-2f1d8c4e9b10
  pywats-client queue requeue station-1 --registry instances.toml --all-failed
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "queue",
        help="list queued reports or requeue failed ones",
        description="Look into an instance's durable report queue. Safe while it runs.",
        epilog=_LIST_EXAMPLES + _REQUEUE_EXAMPLES.replace("examples:\n", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(
        title="queue commands", metavar="ACTION", parser_class=type(parser)
    )

    listing = commands.add_parser(
        "list",
        usage="%(prog)s (--config FILE | NAME [--registry FILE]) "
        "[--state {pending,failed,all}] [--json] [--limit N]",
        help="reports waiting to upload or parked in failed/, next first",
        description="List queued reports with id, source file, attempts, next attempt and "
        "last error. Reports in flight right now are listed as pending.",
        epilog=_LIST_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    listing.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help="the instance's name in the registry (instead of --config)",
    )
    _add_config(listing)
    listing.add_argument(
        "--state",
        choices=("pending", "failed", "all"),
        default="all",
        help="which reports to list (default: all)",
    )
    listing.add_argument("--json", action="store_true", help="one JSON document for programs")
    listing.add_argument(
        "--limit",
        type=_count,
        default=None,
        metavar="N",
        help=f"list at most N reports per state; 0 = all (default: {_TABLE_LIMIT} in the "
        "table, all with --json)",
    )
    listing.set_defaults(handler=_list, _parser=listing)

    requeue = commands.add_parser(
        "requeue",
        usage="%(prog)s (--config FILE | NAME [--registry FILE]) (ID ... | --all-failed) [--json]",
        help="move failed reports back to pending (attempts reset, same id)",
        description="Move reports from failed/ back to pending/ so they are uploaded again. "
        "The report id never changes, so a report the server already has is replaced, "
        "not doubled.",
        epilog=_REQUEUE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config(requeue)
    requeue.add_argument(
        "ids",
        nargs="*",
        metavar="ID",
        help="report ids to requeue; without --config the first is the instance's NAME "
        "in the registry",
    )
    requeue.add_argument("--all-failed", action="store_true", help="requeue every failed report")
    requeue.add_argument("--json", action="store_true", help="one JSON document for programs")
    requeue.set_defaults(handler=_requeue, _parser=requeue)

    def no_action(args: argparse.Namespace) -> int:
        parser.print_help()
        return EXIT_USAGE

    parser.set_defaults(handler=no_action)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="the instance's JSON config (or give NAME)"
    )
    add_registry_option(parser)


_PLAIN_ARG = re.compile(r"[\w./\\:@%+=,~-]+")


def _quoted(text: str) -> str:
    """``text`` as one shell word (double quotes work in cmd, PowerShell and sh)."""
    return text if _PLAIN_ARG.fullmatch(text) else f'"{text}"'


class _Source:
    """Which instance the command works on, as the user named it."""

    def __init__(self, args: argparse.Namespace, name: str | None) -> None:
        parser: argparse.ArgumentParser = args._parser
        self.config_file: Path | None = args.config
        self.name = name or ""  # used when there is no --config
        self.registry: Path | None = args.registry
        if self.config_file is not None and name is not None:
            parser.error(f"give --config or the instance NAME, not both (NAME: {name!r})")
        if self.config_file is not None and self.registry is not None:
            parser.error("--registry goes with an instance NAME; with --config leave it out")
        if self.config_file is None and name is None:
            parser.error(
                "name the instance: --config FILE, or its NAME in the registry "
                "(--registry FILE or $PYWATS_REGISTRY)"
            )

    def load(self, args: argparse.Namespace) -> ClientConfig:
        if self.config_file is not None:
            return ClientConfig.load(self.config_file)
        return instance_config(args, self.name)

    def options(self) -> str:
        """The options that name this instance again, for a command to copy."""
        if self.config_file is not None:
            return f"--config {_quoted(str(self.config_file))}"
        words = [_quoted(self.name)]
        if self.registry is not None:
            words.append(f"--registry {_quoted(str(self.registry))}")
        return " ".join(words)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (all) or more")
    return value


def _open_store(config: ClientConfig) -> QueueStore | None:
    if not config.queue_dir.is_dir():
        return None
    return QueueStore(config.queue_dir, maintenance=False)


def _row(item: QueueItem) -> dict[str, Any]:
    env = item.envelope
    return {
        "state": item.state,
        "id": env.id,
        "source_name": env.source_name,
        "source_sha256": env.source_sha256,
        "converter": env.converter,
        "created_at": env.created_at,
        "attempts": env.attempts,
        "next_attempt_at": env.next_attempt_at,
        "last_status": env.last_status,
        "last_error": env.last_error,
        "failed_at": env.failed_at,
        "file": item.name,
    }


def _local_time(iso: str | None) -> str:
    if not iso:
        return "now"
    try:
        return datetime.fromtimestamp(iso_to_epoch(iso)).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OSError, OverflowError):  # out of the OS's local-time range
        return iso


def _list(args: argparse.Namespace) -> int:
    config = _Source(args, args.name).load(args)
    store = _open_store(config)
    states: tuple[QueueState, ...] = ("pending", "failed") if args.state == "all" else (args.state,)
    limit = args.limit if args.limit is not None else (0 if args.json else _TABLE_LIMIT)
    rows: list[dict[str, Any]] = []
    more: dict[str, bool] = {}
    problems: list[str] = []
    if store is not None:
        for state in states:
            more[state] = False

            def corrupt(name: str, reason: str, state: str = state) -> None:
                problems.append(f"{state}/{name}: cannot be read ({reason})")

            for taken, item in enumerate(store.iter_items(state, on_corrupt=corrupt)):
                if limit and taken >= limit:
                    more[state] = True
                    break
                rows.append(_row(item))
    for problem in problems:
        error(problem, "the worker moves such files to quarantine/ with a reason file")
    code = EXIT_FAILED if problems else EXIT_OK  # a script must not read "empty" then
    if args.json:
        print_json(
            {
                "queue": str(config.queue_dir),
                "reports": rows,
                "truncated": more,
                "unreadable": problems,
            }
        )
        return code
    if store is None:
        console.print(f"no queue folder at {config.queue_dir} yet: nothing has been queued")
        return EXIT_OK
    _print_table(rows, config, unreadable=len(problems))
    for shown, truncated in more.items():
        if truncated:
            console.print(f"[dim]more {shown} reports not shown; use --limit 0 for all[/]")
    return code


def _print_table(rows: list[dict[str, Any]], config: ClientConfig, *, unreadable: int) -> None:
    if not rows and unreadable:
        console.print(
            f"no readable report in the queue of {config.instance_name!r} "
            f"({config.queue_dir}); {unreadable} file(s) cannot be read (above)"
        )
        return
    if not rows:
        console.print(f"queue of {config.instance_name!r} is empty ({config.queue_dir})")
        return
    console.print(Text(f"queue of {config.instance_name!r}", style="italic"))
    console.print(render_reports(rows))


def render_reports(rows: list[dict[str, Any]]) -> RenderableType:
    """A table where it fits whole ids and a readable error; else one block per report."""
    return Fit([(_table(rows), _table(rows, probe=True)), (_blocks(rows), None)])


def _table(rows: list[dict[str, Any]], *, probe: bool = False) -> Table:
    """Only the last error folds; ``probe``: the table with it at its narrowest."""
    table = Table(header_style="bold")
    table.add_column("state", no_wrap=True)
    table.add_column("id", no_wrap=True)
    table.add_column("source file", no_wrap=True)
    table.add_column("attempts", justify="right", no_wrap=True)
    table.add_column("next attempt", no_wrap=True)
    # rich widens a column back to its min_width after fitting the table, past the
    # edge: the width is only pinned in the probe.
    error_width = (
        free_text_width("last error", (r["last_error"] for r in rows), _ERROR_MIN)
        if probe
        else None
    )
    table.add_column("last error", overflow="fold", min_width=error_width, max_width=error_width)
    for row in rows:
        failed = row["state"] == "failed"
        table.add_row(
            Text(row["state"], style="red" if failed else ""),
            row["id"],
            Text(row["source_name"]),
            str(row["attempts"]),
            "-" if failed else _local_time(row["next_attempt_at"]),
            Text(row["last_error"] or ""),
        )
    return table


def _blocks(rows: list[dict[str, Any]]) -> RenderableType:
    """One block per report: state, id and attempts on a line, then the rest below it."""
    parts: list[RenderableType] = []
    for row in rows:
        failed = row["state"] == "failed"
        parts.append(
            Text.assemble(
                (f"{row['state']:<7}", "red" if failed else "bold"),
                "  ",
                (row["id"], "bold"),
                f"  attempts {row['attempts']}",
            )
        )
        details = Table(box=None, show_header=False, padding=(0, 1, 0, 0))
        details.add_column(style="dim", no_wrap=True, min_width=len("next attempt"))
        details.add_column(overflow="fold")
        details.add_row("source file", Text(row["source_name"]))
        if not failed:
            details.add_row("next attempt", _local_time(row["next_attempt_at"]))
        if row["last_error"]:
            details.add_row("last error", Text(row["last_error"]))
        parts.append(Padding(details, (0, 0, 0, 2), expand=False))
    return Group(*parts)


def _requeue(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args._parser
    ids: list[str] = list(args.ids)
    name = ids.pop(0) if args.config is None and ids else None
    source = _Source(args, name)
    if args.all_failed == bool(ids):
        parser.error("give report IDs or --all-failed (one of the two)")
    config = source.load(args)
    store = _open_store(config)
    if store is None:
        error(
            f"no queue folder at {config.queue_dir}: nothing to requeue",
            "check queue_path in the config",
        )
        return EXIT_FAILED
    result = store.requeue(None if args.all_failed else ids)
    if args.json:
        print_json(
            {
                "requeued": result.requeued,
                "missing": result.missing,
                "unreadable": [{"file": n, "problem": p} for n, p in result.unreadable],
            }
        )
    else:
        if result.requeued:
            console.print(
                f"requeued {len(result.requeued)} report(s); {_when_sent(config)}",
                soft_wrap=True,
            )
            for report_id in result.requeued:
                console.print(f"  {report_id}")
        elif args.all_failed and not result.unreadable:
            console.print("no failed reports: nothing to requeue")
        for report_id in result.missing:
            error(
                f"{report_id} is not in failed/",
                f"see 'pywats-client queue list {source.options()} --state failed' for the ids",
            )
        for name, problem in result.unreadable:
            error(f"failed/{name} cannot be read ({problem})", "repair or delete that file")
    return EXIT_FAILED if result.missing or result.unreadable else EXIT_OK


def _when_sent(config: ClientConfig) -> str:
    """When the requeued reports go out: a requeue only moves files, the worker sends them."""
    if running_worker_pid(config.queue_dir) is None:
        return "no worker runs for this station now; they are sent when it starts"
    return "a running worker uploads them within seconds"
