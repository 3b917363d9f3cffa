"""`pywats-client queue`: list queued reports, move failed ones back to pending.

Both work while the instance's worker runs: listing only reads, and requeue
writes each report into ``pending/`` by an atomic rename before it removes
the failed copy, then signals the worker to look at once.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from pywats_client.cli._output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    console,
    error,
    print_json,
)
from pywats_client.core.config import ClientConfig
from pywats_client.queue import QueueItem, QueueState, QueueStore
from pywats_client.queue._envelope import iso_to_epoch

__all__ = ["register"]

_TABLE_LIMIT = 200

_LIST_EXAMPLES = """examples:
  pywats-client queue list --config station-1/config.json
  pywats-client queue list --config station-1/config.json --state failed
  pywats-client queue list --config station-1/config.json --json --limit 0
"""

_REQUEUE_EXAMPLES = """examples:
  pywats-client queue requeue --config station-1/config.json --all-failed
  pywats-client queue requeue --config station-1/config.json 0b6c3a52-5f41-4d7e-9a57-2f1d8c4e9b10
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
        help="reports waiting to upload or parked in failed/, next first",
        description="List queued reports with id, source file, attempts, next attempt and "
        "last error. Reports in flight right now are listed as pending.",
        epilog=_LIST_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        help=f"list at most N reports per state; 0 = all (default: {_TABLE_LIMIT} in the "
        "table, all with --json)",
    )
    listing.set_defaults(handler=_list)

    requeue = commands.add_parser(
        "requeue",
        help="move failed reports back to pending (attempts reset, same id)",
        description="Move reports from failed/ back to pending/ so they are uploaded again. "
        "The report id never changes, so a report the server already has is replaced, "
        "not doubled.",
        epilog=_REQUEUE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config(requeue)
    requeue.add_argument("ids", nargs="*", metavar="ID", help="report ids to requeue")
    requeue.add_argument("--all-failed", action="store_true", help="requeue every failed report")
    requeue.add_argument("--json", action="store_true", help="one JSON document for programs")
    requeue.set_defaults(handler=_requeue, _parser=requeue)

    def no_action(args: argparse.Namespace) -> int:
        parser.print_help()
        return EXIT_USAGE

    parser.set_defaults(handler=no_action)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, required=True, metavar="FILE", help="the instance's JSON config"
    )


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
    config = ClientConfig.load(args.config)
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
    if args.json:
        print_json({"queue": str(config.queue_dir), "reports": rows, "truncated": more})
        return EXIT_OK
    if store is None:
        console.print(f"no queue folder at {config.queue_dir} yet: nothing has been queued")
        return EXIT_OK
    _print_table(rows, config)
    for shown, truncated in more.items():
        if truncated:
            console.print(f"[dim]more {shown} reports not shown; use --limit 0 for all[/]")
    return EXIT_OK


def _print_table(rows: list[dict[str, Any]], config: ClientConfig) -> None:
    if not rows:
        console.print(f"queue of {config.instance_name!r} is empty ({config.queue_dir})")
        return
    table = Table(title=f"queue of {config.instance_name!r}", title_justify="left")
    table.add_column("state")
    table.add_column("id", no_wrap=True)
    table.add_column("source file", overflow="fold")
    table.add_column("attempts", justify="right")
    table.add_column("next attempt")
    table.add_column("last error", overflow="fold", ratio=1)
    for row in rows:
        failed = row["state"] == "failed"
        table.add_row(
            f"[red]{row['state']}[/]" if failed else row["state"],
            row["id"],
            row["source_name"],
            str(row["attempts"]),
            "-" if failed else _local_time(row["next_attempt_at"]),
            row["last_error"] or "",
        )
    console.print(table)


def _requeue(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args._parser
    if args.all_failed == bool(args.ids):
        parser.error("give report IDs or --all-failed (one of the two)")
    config = ClientConfig.load(args.config)
    store = _open_store(config)
    if store is None:
        error(
            f"no queue folder at {config.queue_dir}: nothing to requeue",
            "check queue_path in the config",
        )
        return EXIT_FAILED
    result = store.requeue(None if args.all_failed else args.ids)
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
                f"requeued {len(result.requeued)} report(s); a running worker uploads them "
                "within seconds"
            )
            for report_id in result.requeued:
                console.print(f"  {report_id}")
        elif args.all_failed and not result.unreadable:
            console.print("no failed reports: nothing to requeue")
        for report_id in result.missing:
            error(
                f"{report_id} is not in failed/",
                "see 'pywats-client queue list --state failed' for the ids",
            )
        for name, problem in result.unreadable:
            error(f"failed/{name} cannot be read ({problem})", "repair or delete that file")
    return EXIT_FAILED if result.missing or result.unreadable else EXIT_OK
