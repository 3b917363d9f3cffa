"""`pywats-client status`: show the state of every instance (a table, JSON, or live)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich import box
from rich.console import ConsoleOptions, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from pywats_client.cli._layout import FREE_TEXT_MIN, Fit, Layout, free_text_width
from pywats_client.cli._output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, console, print_json
from pywats_client.cli._registry import add_registry_option, registry_path
from pywats_client.errors import ConfigError
from pywats_client.services._post_actions import REASON_SUFFIX

#: Colour of each state in the table.
STATE_STYLES = {
    "running": "bold green",
    "paused": "yellow",
    "starting": "cyan",
    "backoff": "yellow",
    "crash-looping": "bold red",
    "fatal": "bold red",
    "stopping": "magenta",
    "stopped": "dim",
    "disabled": "dim",
    "not-running": "dim",
}
_ERROR_WIDTH = 60


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show the state of every instance",
        description="Show every instance of the registry: state, pid, uptime, restarts, "
        "heartbeat age, queue counts, connection and last error. Works with or without a "
        "running supervisor (without one, queue counts come from the queue folders).",
        epilog="examples:\n  pywats-client status --registry instances.toml\n"
        "  pywats-client status --registry instances.toml --watch\n"
        "  pywats-client status --registry instances.toml --json\n"
        "  pywats-client status --registry instances.toml --check   "
        "# exit 1 and one line per problem",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_registry_option(parser)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="print JSON for programs")
    mode.add_argument("--watch", action="store_true", help="live view until Ctrl+C")
    mode.add_argument(
        "--check",
        action="store_true",
        help="health check for monitoring: exit 0 when all is well, else 1 and what needs a look",
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="--watch refresh, seconds"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pywats_client.supervisor import status_report

    path = registry_path(args)
    if args.check:
        try:
            return _check(status_report(path), path)
        except ConfigError as exc:  # a monitor reads one line and exit 1, whatever is wrong
            console.print(Text(f"registry: {exc}"), soft_wrap=True)
            return EXIT_FAILED
    report = status_report(path)  # a bad registry raises ConfigError: one line, exit 2
    if args.json:
        print_json(
            {
                "registry": str(path.resolve()),
                "supervisor": {
                    "running": report.supervisor.running,
                    "pid": report.supervisor.pid,
                    "metrics_url": report.supervisor.metrics_url,
                    "last_error": report.supervisor.last_error,
                },
                "registry_error": report.registry_error,
                "instances": [i.to_dict() for i in report.instances],
            }
        )
        return EXIT_USAGE if report.registry_error else EXIT_OK
    if not args.watch:
        console.print(render(report, path))
        return EXIT_USAGE if report.registry_error else EXIT_OK
    return _watch(path, max(0.2, args.interval))


#: States of an enabled station that need someone (the transient ones do not).
_BROKEN = ("crash-looping", "fatal", "not-running")
#: A supervisor whose status.json is older than this is not responding.
_SILENT_AFTER_S = 30.0
#: A station cut off from its server for longer than this needs a look.
_OFFLINE_AFTER_S = 600.0


def _check(report: Any, path: Path) -> int:
    """One line per problem that needs a person; exit 1 if there is any."""
    problems: list[str] = []
    if report.registry_error:
        problems.append(f"registry: {report.registry_error}")
    sup = report.supervisor
    now = time.time()
    if not sup.running:
        why = f": {sup.last_error}" if sup.last_error else ""
        problems.append(f"no supervisor runs for {path}{why}")
    elif sup.updated_at is not None and now - sup.updated_at.timestamp() > _SILENT_AFTER_S:
        silent = format_duration(now - sup.updated_at.timestamp())
        problems.append(f"the supervisor (pid {sup.pid}) has not written its status for {silent}")
    enabled = [inst for inst in report.instances if inst.enabled]
    for inst in enabled:
        if inst.state in _BROKEN and sup.running:
            problems.append(f"{inst.name}: {inst.state}: {inst.last_error or 'no reason recorded'}")
        elif inst.config_problem:
            problems.append(f"{inst.name}: {inst.config_problem}; it fails at its next restart")
        snapshot = inst.snapshot
        if inst.connection == "unauthorized":
            problems.append(f"{inst.name}: the server refuses its token: {inst.last_error}")
        elif (
            inst.connection == "disconnected"
            and snapshot is not None
            and snapshot.connection_since is not None
            and now - snapshot.connection_since > _OFFLINE_AFTER_S
        ):
            offline = format_duration(now - snapshot.connection_since)
            problems.append(f"{inst.name}: no connection to its server for {offline}")
        if inst.failed:
            problems.append(
                f"{inst.name}: {inst.failed} report(s) in failed/, never retried by themselves: "
                f"pywats-client queue list {inst.name} --registry {path}"
            )
        parked = _parked_note(inst)
        if parked:
            problems.append(f"{inst.name}: {parked}")
        # what the station itself says needs a look (a full queue, a plugin that did
        # not load, a watch folder nothing arrives in, unreadable queue files...)
        problems += [f"{inst.name}: {w}" for w in (snapshot.warnings if snapshot else [])]
    for problem in problems:
        console.print(Text(problem), soft_wrap=True)
    if problems:
        return EXIT_FAILED
    running = sum(1 for i in enabled if i.state in ("running", "paused"))
    console.print(f"OK: {running} of {len(enabled)} station(s) running, nothing to do")
    return EXIT_OK


def _watch(path: Path, interval: float) -> int:
    from rich.live import Live

    from pywats_client.supervisor import status_report

    try:
        with Live(render(status_report(path), path), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                view: RenderableType
                try:
                    view = render(status_report(path), path)
                except ConfigError as exc:  # registry being edited: say so, keep watching
                    view = Text(f"error: {exc}", style="red")
                live.update(view, refresh=True)
    except KeyboardInterrupt:
        return EXIT_OK


def render(report: Any, path: Path) -> RenderableType:
    """The status table with a one-line header about the supervisor."""
    sup = report.supervisor
    if sup.running:
        header = Text.assemble(("supervisor ", "bold"), f"pid {sup.pid}", f" · {path}")
        if sup.metrics_url:
            header.append(f" · metrics {sup.metrics_url}")
    else:
        header = Text.assemble(
            ("no supervisor running", "bold yellow"),
            f" for {path}\nstart one with: pywats-client supervise --registry {path}",
        )
    parts: list[RenderableType] = [header]
    if report.registry_error:
        parts.append(
            Text(
                f"error: {report.registry_error}\nthe supervisor runs on with the last valid "
                "version of the registry (shown below); fix the file and it applies it by itself",
                style="red",
            )
        )
    if sup.last_error:
        parts.append(Text(f"supervisor: {sup.last_error}", style="red"))
    instances = list(report.instances)

    def layouts(options: ConsoleOptions) -> list[Layout]:
        # On a terminal long errors fold to keep rows short; in a file each row is one line.
        error_width = _ERROR_WIDTH if options.is_terminal else None
        narrowest = free_text_width("last error", (_error(i) for i in instances), FREE_TEXT_MIN)
        return [
            (_table(instances, error_width), _table(instances, narrowest, probe=True)),
            (_compact(instances), None),
        ]

    parts.append(Fit(layouts))
    for inst in instances:  # what a station says needs a look, though it runs
        for warning in inst.snapshot.warnings if inst.snapshot is not None else []:
            line = Text.assemble((inst.name, "bold"), ": ", (warning, "yellow"))
            parts.append(Padding(line, (0, 0, 0, 2), expand=False))
        parked = _parked_note(inst)
        if parked:
            line = Text.assemble((inst.name, "bold"), ": ", (parked, "red"))
            parts.append(Padding(line, (0, 0, 0, 2), expand=False))
    return Group(*parts)


def _table(
    instances: list[Any],
    error_width: int | None,
    *,
    probe: bool = False,
    errors: bool = True,
) -> Table:
    """One row per instance; only the last error folds, within ``error_width``.

    ``probe``: the table with the error column pinned at ``error_width``.
    """
    compact = not errors
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        header_style="bold",
        show_edge=not compact,
        padding=(0, 0) if compact else (0, 1),
    )
    name_width = max((len(i.name) for i in instances), default=8)
    table.add_column("instance", no_wrap=True, min_width=min(name_width, 32))
    table.add_column("state", no_wrap=True, min_width=len("crash-looping"))
    # "sent" (since the worker started) tells a busy station from a stuck one at a
    # glance; a narrow terminal keeps the columns that must stay whole instead
    # "parked" (files in the Error folder(s)) is also a line below the table
    counted = ("sent", "pending", "failed", "parked") if errors else ("pending", "failed")
    for column in ("pid", "uptime", "restarts", "beat", *counted):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("server", no_wrap=True)
    if errors:
        # rich widens a column back to its min_width after fitting the table, past
        # the edge: the minimum is only pinned in the probe.
        table.add_column(
            "last error",
            overflow="fold",
            min_width=error_width if probe else None,
            max_width=error_width,
        )
    for inst in instances:
        state = str(inst.state)
        cells: list[RenderableType] = [
            inst.name,
            Text(state, style=STATE_STYLES.get(state, "")),
            _opt(inst.pid),
            format_duration(inst.uptime_s),
            str(inst.restarts),
            format_duration(inst.heartbeat_age_s, precise=True),
        ]
        if errors:
            cells.append(str(inst.uploaded) if inst.snapshot is not None else "-")
        cells += [
            _opt(inst.pending),
            Text(_opt(inst.failed), style="red" if inst.failed else ""),
        ]
        if errors:
            cells.append(Text(_opt(inst.in_error), style="red" if inst.in_error else ""))
        cells.append(inst.connection if inst.snapshot is not None else "-")
        if errors:
            cells.append(Text(_error(inst), style="red"))
        table.add_row(*cells)
    return table


def _compact(instances: list[Any]) -> RenderableType:
    """For a narrow terminal: the table without the error column, each error below it."""
    parts: list[RenderableType] = [_table(instances, None, errors=False)]
    for inst in instances:
        if inst.last_error:
            line = Text.assemble((inst.name, "bold"), ": ", (_error(inst), "red"))
            parts.append(Padding(line, (0, 0, 0, 2), expand=False))
    return Group(*parts)


def _error(inst: Any) -> str:
    """The last error, led by its age: a bad file an hour ago is history."""
    if not inst.last_error:
        return ""
    if inst.last_error_at is None:
        return str(inst.last_error)
    age = format_duration(max(0.0, time.time() - inst.last_error_at.timestamp()))
    return f"({age} ago) {inst.last_error}"


def _parked_note(inst: Any) -> str | None:
    """What the files in a station's Error folder(s) need, if there are any."""
    if not inst.in_error:
        return None
    folders = inst.error_folders
    where = (
        next(iter(folders))
        if len(folders) == 1
        else ", ".join(f"{folder} ({n})" for folder, n in folders.items()) or "Error"
    )
    return (
        f"{inst.in_error} file(s) parked in {where}, not converted, so not in WATS: read "
        f"<file>{REASON_SUFFIX} beside each, fix the file or the converter and move the file "
        "back into the watch folder (or move it away if it is not a result)"
    )


def _opt(value: Any) -> str:
    return "-" if value is None else str(value)


def format_duration(seconds: float | None, *, precise: bool = False) -> str:
    """Short human duration: ``0.4s``, ``12s``, ``5m03s``, ``2h05m``, ``3d04h``."""
    if seconds is None:
        return "-"
    if precise and seconds < 10:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
