"""`pywats-client start|stop|restart|pause|resume|reload`: control stations of a running supervisor.

Each command asks the supervisor over its control channel
(:mod:`pywats_client.control`), waits until the instances got where it asked
(``--wait``), and prints the resulting state per instance (a table, or
``--json``). Exit 0 when every instance got there, 1 when one did not or
the supervisor could not be asked (not running, refused), 2 on bad usage,
including an instance name the registry does not have (as ``logs`` does).
"""

from __future__ import annotations

import argparse
import textwrap
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table
from rich.text import Text

from pywats_client.cli._output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, console, error, print_json
from pywats_client.cli._registry import add_registry_option, registry_path
from pywats_client.cli.status import STATE_STYLES

if TYPE_CHECKING:
    from pywats_client.control import ControlResult

#: command: (one-line help, description)
_COMMANDS = {
    "start": (
        "start stopped instances",
        "Start instances an operator stopped (or that crashed out), and wait until each runs. "
        "An operator stop is remembered across supervisor restarts until 'start'.",
    ),
    "stop": (
        "stop instances gracefully (they stay stopped)",
        "Stop instances gracefully (in-flight uploads finish, files close) and keep them "
        "stopped, across supervisor restarts too, until 'pywats-client start'. Their watch "
        "folders fill up untouched meanwhile; 'start' drains them.",
    ),
    "restart": (
        "restart instances (new worker process)",
        "Stop instances gracefully and start each in a new worker process; the other "
        "instances are not touched. Waits until the new worker runs.",
    ),
    "pause": (
        "pause uploads of instances (keep watching and queueing)",
        "Hold uploads: files are still picked up, converted and queued durably, nothing is "
        "sent to the server until 'pywats-client resume' (e.g. during server maintenance). "
        "Remembered across supervisor restarts.",
    ),
    "resume": (
        "resume uploads of paused instances",
        "Upload again, starting with everything queued while paused (each report once).",
    ),
}
_DEFAULT_WAIT = 60.0


def register(subparsers: Any) -> None:
    for name, (help_text, description) in _COMMANDS.items():
        parser = subparsers.add_parser(
            name,
            help=help_text,
            description=textwrap.fill(
                description + " Needs a running supervisor ('pywats-client supervise')."
            ),
            epilog=f"examples:\n  pywats-client {name} station-3 --registry instances.toml\n"
            f"  pywats-client {name} --all --registry instances.toml --json",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument("names", nargs="*", metavar="NAME", help="instance names")
        parser.add_argument("--all", action="store_true", help="every instance of the registry")
        add_registry_option(parser)
        _add_common(parser)
        wait = parser.add_mutually_exclusive_group()
        wait.add_argument(
            "--wait",
            type=float,
            default=_DEFAULT_WAIT,
            metavar="S",
            help=f"seconds to wait for the instances to get there (default {_DEFAULT_WAIT:g})",
        )
        wait.add_argument(
            "--no-wait", action="store_true", help="return once the supervisor took the command"
        )
        parser.set_defaults(handler=_run, command=name)
    parser = subparsers.add_parser(
        "reload",
        help="re-read the registry now",
        description=textwrap.fill(
            "Make the running supervisor re-read the registry and the instance configs now "
            "(it also notices changes by itself within seconds): added instances start, "
            "removed ones stop, changed ones restart; the others are not touched."
        ),
        epilog="example:\n  pywats-client reload --registry instances.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_registry_option(parser)
    _add_common(parser)
    parser.set_defaults(handler=_run, command="reload", names=[], all=False, no_wait=True, wait=0)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for programs")


def _run(args: argparse.Namespace) -> int:
    from pywats_client.control import (
        ControlRefused,
        ControlUnavailable,
        SupervisorControl,
        SupervisorNotRunning,
        UnknownInstance,
    )

    command: str = args.command
    if command != "reload" and bool(args.names) == bool(args.all):
        error(
            f"'{command}' needs instance names or --all (not both)",
            f"example: pywats-client {command} station-3 --registry instances.toml",
        )
        return EXIT_USAGE
    if not args.no_wait and args.wait < 0:
        error(f"--wait {args.wait:g}: must be 0 or more seconds")
        return EXIT_USAGE
    from pywats_client.core.registry import Registry

    path = registry_path(args)
    registry = Registry.load(path, check_configs=False)  # a bad registry: ConfigError, exit 2
    control = SupervisorControl(registry)
    wait = 0.0 if args.no_wait else args.wait
    try:
        unknown = [name for name in args.names if registry.get(name) is None]
        if unknown:  # said before asking: the same answer with or without a supervisor
            raise UnknownInstance(unknown, registry.names, registry.path)
        if command == "reload":
            result = control.reload()
        else:
            method = getattr(control, command)
            result = method(*args.names, all_instances=args.all, wait=wait)
    except (SupervisorNotRunning, UnknownInstance, ControlRefused, ControlUnavailable) as exc:
        return _failed(args, exc, path)
    if args.json:
        print_json({"registry": str(control.registry_path), **result.to_dict()})
    else:
        console.print(render(result))
    if args.no_wait or result.ok:
        return EXIT_OK
    return EXIT_FAILED


def _failed(args: argparse.Namespace, exc: Exception, path: Any) -> int:
    from pywats_client.control import UnknownInstance

    kind = {
        "SupervisorNotRunning": "supervisor-not-running",
        "UnknownInstance": "unknown-instance",
        "ControlRefused": "refused",
        "ControlUnavailable": "unavailable",
    }[type(exc).__name__]
    if args.json:
        document: dict[str, Any] = {"ok": False, "error": {"kind": kind, "message": str(exc)}}
        if isinstance(exc, UnknownInstance):
            document["error"].update(names=list(exc.names), known=list(exc.known))
        print_json(document)
    hint = None  # SupervisorNotRunning's message already says how to start it
    if isinstance(exc, UnknownInstance):
        hint = f"see the instances with: pywats-client status --registry {path}"
    error(str(exc), hint)
    return EXIT_USAGE if isinstance(exc, UnknownInstance) else EXIT_FAILED


def render(result: ControlResult) -> Table:
    """One row per instance: state now, pid, before, and whether it got there."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, header_style="bold")
    table.title = f"{result.command}: {len(result)} instance(s)"
    table.title_justify = "left"
    table.add_column("instance", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("pid", justify="right", no_wrap=True)
    table.add_column("before", no_wrap=True)
    table.add_column("uploads", no_wrap=True)
    table.add_column("result", overflow="fold")
    for inst in result:
        state = str(inst.state)
        before = "-"
        if inst.previous_state is not None:
            pid = f" {inst.previous_pid}" if inst.previous_pid else ""
            before = f"{inst.previous_state}{pid}"
        mark = Text("ok", style="green") if inst.done else Text("not done", style="bold red")
        if inst.note:
            mark.append(f"  {inst.note}", style="" if inst.done else "red")
        table.add_row(
            inst.name,
            Text(state, style=STATE_STYLES.get(state, "")),
            str(inst.pid) if inst.pid else "-",
            before,
            inst.uploads or ("paused" if inst.paused else "-"),
            mark,
        )
    return table
