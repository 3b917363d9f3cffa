"""`pywats-client demo`: the whole system on this machine, with no WATS account.

Starts the local WATS stand-in, writes a registry of stations into a temp
folder, runs the real supervisor on it, drops a stream of sample files (every
built-in format, one bad file, one written slowly), kills one worker halfway,
shows a live table, and ends with a verdict counted from what the server
holds. The engine is ``pywats_client._demo``.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from pywats_client.cli._output import EXIT_FAILED, EXIT_OK, console, error, print_json

__all__ = ["register", "render_summary"]

#: Exit code after Ctrl+C, as for any program stopped by SIGINT.
EXIT_INTERRUPTED = 130
MAX_STATIONS = 16
MAX_FILES = 10_000


def _bounded_int(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range; use {low} to {high}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value:g} must be more than 0 seconds")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="see it work: a local WATS stand-in, a supervisor, stations and sample files",
        description=(
            "Run the whole system on this machine, with no WATS account: a local WATS\n"
            "stand-in server, a supervisor with N stations in a temp folder (each taking\n"
            "other formats: WSJF, WSXF, WATS text / CSV, JUnit, ATML), a stream of sample\n"
            "files with one deliberately bad file and one written slowly, and one worker\n"
            "killed halfway to show the restart. A live table shows each station; the\n"
            "summary counts what the server accepted, what went to the Error folders and\n"
            "why, and what was lost (must be 0).\n\n"
            "Exit code 0 when every valid file reached the server exactly once before the\n"
            "deadline; 1 otherwise (the folder is then kept, to see why); 130 after Ctrl+C,\n"
            "which stops every process the demo started."
        ),
        epilog="examples:\n"
        "  pywats-client demo\n"
        "  pywats-client demo --stations 3 --files 100 --keep\n"
        "  pywats-client demo --json > summary.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--stations",
        type=_bounded_int(1, MAX_STATIONS),
        default=2,
        metavar="N",
        help="stations to run (default 2)",
    )
    parser.add_argument(
        "--files",
        type=_bounded_int(1, MAX_FILES),
        default=40,
        metavar="N",
        help="sample files to drop, one of them bad (default 40)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the demo folder (registry, configs, queues, Done/Error folders, logs) "
        "and print its path, to explore it with 'pywats-client status' and friends",
    )
    parser.add_argument(
        "--json", action="store_true", help="print only the summary, as JSON, for programs"
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=60.0,
        metavar="S",
        help="give up waiting for the uploads after S seconds (default 60)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pywats_client._demo import DemoOptions, run_demo

    options = DemoOptions(
        stations=args.stations, files=args.files, keep=args.keep, timeout=args.timeout
    )
    if not args.json:
        console.print(
            f"Starting the demo: {options.stations} station(s), {options.files} files; "
            "Ctrl+C stops it.",
            markup=False,
        )
    summary, demo = run_demo(options, console=None if args.json else console)
    data = summary.to_dict()
    if args.json:
        print_json(data)
    else:
        console.line()
        console.print(render_summary(data))
    if demo.cleanup_error:
        error(demo.cleanup_error)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.ok else EXIT_FAILED


def _verdict(data: dict[str, Any]) -> Text:
    if data["interrupted"]:
        return Text("Interrupted: every process the demo started has been stopped.", "yellow")
    if data["ok"]:
        return Text(
            f"OK: every one of the {data['valid_files']} valid files reached the server "
            "exactly once.",
            "bold green",
        )
    why = "the deadline passed" if data["timed_out"] else "the counts do not add up"
    return Text(
        f"FAILED: {why}. The demo folder is kept: see the station logs in its logs/ folder, "
        "its Error folders and 'pywats-client status' below.",
        "bold red",
    )


def render_summary(data: dict[str, Any]) -> RenderableType:
    """The closing summary, from :meth:`DemoSummary.to_dict`."""
    table = Table(box=box.SIMPLE, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column()
    dropped_note = f"{data['valid_files']} valid, {data['bad_files']} bad"
    if data["slow_files"]:
        dropped_note += f", {data['slow_files']} written slowly"
    if data["files_dropped"] < data["files_planned"]:
        dropped_note += f" (of {data['files_planned']} planned)"
    table.add_row("files dropped", str(data["files_dropped"]), dropped_note)
    table.add_row("reports accepted", str(data["accepted"]), "by the stand-in WATS server")
    table.add_row("errored", str(len(data["errored"])), "moved to Error, reason beside each")
    if data["interrupted"]:
        table.add_row("not uploaded yet", str(data["lost"]), "interrupted before the end")
    else:
        lost_style = "green" if data["lost"] == 0 else "bold red"
        table.add_row("lost", Text(str(data["lost"]), lost_style), "valid files not on the server")
    dup_style = "green" if data["duplicates"] == 0 else "bold red"
    table.add_row(
        "duplicates",
        Text(str(data["duplicates"]), dup_style),
        f"({data['resubmitted']} resubmitted after the kill, replaced by the server)"
        if data["resubmitted"]
        else "",
    )
    restarts = sum(data["restarts"].values())
    table.add_row("worker restarts", str(restarts), _kill_note(data["kills"]))
    table.add_row("took", f"{data['elapsed_s']:.1f} s", "")
    parts: list[RenderableType] = [Text("Summary", style="bold"), table]
    for item in data["errored"]:
        label = "the bad file, as planned" if item["expected"] else "UNEXPECTED"
        reason = item["reason"].removeprefix(f"{item['file']}: ")
        parts.append(Text(f"  {item['station']}/in/Error/{item['file']} ({label}): {reason}"))
    for name in [] if data["interrupted"] else data["lost_files"][:10]:
        parts.append(Text(f"  lost: {name}", style="red"))
    parts.append(_verdict(data))
    if data["folder"]:
        parts.append(
            Text(
                f"The demo folder is kept at {data['folder']}\n"
                f"  pywats-client status --registry {data['folder']}/instances.toml\n"
                f"  pywats-client queue list --config {data['folder']}/station-1/config.json",
            )
        )
    else:
        parts.append(Text("Run with --keep to keep the demo folder and explore it.", "dim"))
    return Group(*parts)


def _kill_note(kills: list[dict[str, Any]]) -> str:
    notes = []
    for kill in kills:
        note = f"killed {kill['station']} pid {kill['pid']} after {kill['after_files']} files"
        if kill["restarted_pid"] is not None:
            note += f"; back as pid {kill['restarted_pid']} in {kill['back_after_s']:.1f} s"
        notes.append(note)
    return "; ".join(notes)
