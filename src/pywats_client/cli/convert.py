"""`pywats-client convert`: dry-run a file through the converters.

Shows which converter takes the file and the WSJF report(s) it makes, exactly
as the service would queue them (ids, station defaults), without queueing,
uploading or moving anything. The quickest loop when writing a converter.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import stat
import traceback
from pathlib import Path
from typing import Any

from rich.json import JSON
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pywats_client.cli._output import EXIT_FAILED, EXIT_OK, console, err_console, error, print_json
from pywats_client.converters import Candidate, Conversion, ConverterManager
from pywats_client.core.config import ClientConfig
from pywats_client.errors import ConversionError
from pywats_client.services._convert_runner import ConvertOutcome, ConvertRunner
from pywats_client.services._scan import FilterRules

__all__ = ["build_manager", "register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="dry-run a file through the converters",
        description="Show which converter takes FILE and the WSJF report(s) it produces.\n"
        "Nothing is queued or uploaded and the file is left where it is. Exits 1 when\n"
        "the file cannot be converted, with the converter and the reason.",
        epilog="examples:\n"
        "  pywats-client convert results/SN-000123.txt\n"
        "  pywats-client convert board.test --converter-path ./converters\n"
        "  pywats-client convert run.xml --config station-1.json --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="result file to convert")
    add_source_options(parser)
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object (converter and reports)"
    )
    parser.set_defaults(handler=run)


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """--config and --converter-path, shared with `pywats-client converters`."""
    parser.add_argument(
        "--config",
        type=Path,
        help="station config (converter settings; instance name for report ids)",
    )
    parser.add_argument(
        "--converter-path",
        type=Path,
        metavar="DIR",
        help="folder of converter plugins (default: the config's converter_path, "
        "else ./converters)",
    )


def build_manager(args: argparse.Namespace, config: ClientConfig | None = None) -> ConverterManager:
    """The manager the options describe (config errors raise ConfigError: exit 2)."""
    if config is None:
        config = _config(args)
    plugin_dir = args.converter_path.resolve() if args.converter_path else config.converter_dir
    return ConverterManager(config, plugin_dirs=[plugin_dir])


def _config(args: argparse.Namespace) -> ClientConfig:
    return ClientConfig.load(args.config) if args.config else ClientConfig()


def _convert_in_time(
    manager: ConverterManager, path: Path, timeout: float
) -> ConvertOutcome[Conversion]:
    """``manager.convert(path)`` on the service's own timed runner: a hang ends here too."""

    async def once() -> ConvertOutcome[Conversion]:
        runner: ConvertRunner[Conversion] = ConvertRunner(
            manager.convert, workers=1, timeout=timeout
        )
        try:
            return await runner.run(path)
        finally:
            runner.close()

    return asyncio.run(once())


def _not_taken_by_station(config: ClientConfig, name: str) -> str | None:
    """Why a station with ``config`` would leave a file of this name in its watch folder."""
    marker = config.ready_marker
    rules = FilterRules.for_config(config)
    if rules.accepts(name):
        return None
    if marker and (rules.marked_name(name) is not None or name.lower() == marker.lower()):
        why = f"it is a ready marker (ready_marker {marker!r}), not a result"
    elif FilterRules(tuple(config.file_patterns)).accepts(name):
        why = f"it matches ignore_patterns {config.ignore_patterns}"
    else:
        suffix = Path(name).suffix
        example = f" such as '*{suffix}'" if suffix else ""
        why = (
            f"it does not match file_patterns {config.file_patterns}; add a pattern"
            f"{example} to file_patterns"
        )
    return f"the station would not take {name!r} from its watch folder: {why}"


def _tried_table(candidates: list[Candidate]) -> Table:
    table = Table(title="converters tried", title_justify="left")
    table.add_column("converter", no_wrap=True)
    table.add_column("origin", overflow="fold")
    table.add_column("answer", overflow="fold")
    for candidate in candidates:
        answer = f"accepts ({candidate.confidence:.2f})" if candidate.accepted else candidate.reason
        table.add_row(Text(candidate.name), Text(candidate.origin), Text(answer))
    return table


def run(args: argparse.Namespace) -> int:
    config = _config(args)
    manager = build_manager(args, config)
    for problem in manager.load():
        err_console.print(
            f"[yellow]warning:[/] {escape(str(problem))}", markup=True, soft_wrap=True
        )
    path: Path = args.file
    if args.config and (not_taken := _not_taken_by_station(config, path.name)):
        err_console.print(f"[yellow]warning:[/] {escape(not_taken)}", markup=True, soft_wrap=True)
    outcome = _convert_in_time(manager, path, config.converter_timeout)
    if outcome.timed_out:
        return _timed_out(args, path, outcome, config.converter_timeout)
    if isinstance(outcome.error, ConversionError):
        return _failed(args, path, outcome.error, manager)
    if outcome.error is not None:
        raise outcome.error  # not the converter's fault: main() reports a bug
    conversion = outcome.value
    assert conversion is not None  # exactly one of value, error, timed_out
    origin = next(
        (info.origin for info in manager.converters if info.name == conversion.converter), "?"
    )
    if args.json:
        print_json(
            {
                "file": str(path),
                "converter": conversion.converter,
                "origin": origin,
                "source_sha256": conversion.source_sha256,
                "reports": conversion.reports,
            }
        )
        return EXIT_OK
    count = len(conversion.reports)
    console.print(
        f"[bold]{escape(str(path))}[/]: converted by [green]{escape(conversion.converter)}[/] "
        f"({escape(origin)}) into "
        f"{count} report{'s' if count != 1 else ''}",
        markup=True,
        soft_wrap=True,
    )
    for report in conversion.reports:
        console.print(
            f"\n[bold]report {report['id']}[/]  "
            + escape(f"pn={report.get('pn')} sn={report.get('sn')} result={report.get('result')}"),
            markup=True,
            soft_wrap=True,
        )
        # soft_wrap: the terminal may wrap a long string for the eye, but nothing is
        # inserted into it, so the text copied or redirected stays valid JSON.
        console.print(JSON.from_data(report, indent=2), soft_wrap=True)
    return EXIT_OK


_TO_ERROR_FOLDER = "the service would move this file to the error folder with this reason"


def _failed(
    args: argparse.Namespace, path: Path, exc: ConversionError, manager: ConverterManager
) -> int:
    hint, tried = _why(path, exc, manager)
    if args.json:
        print_json(
            {
                "file": str(path),
                "converter": exc.converter,
                "error": str(exc),
                "tried": [dataclasses.asdict(c) for c in tried],
            }
        )
    error(str(exc), hint)
    if tried and not args.json:
        err_console.print(_tried_table(tried))
    cause = exc.__cause__
    if cause is not None and not args.json:
        err_console.print("".join(traceback.format_exception(cause)).rstrip(), markup=False)
    return EXIT_FAILED


def _timed_out(
    args: argparse.Namespace, path: Path, outcome: ConvertOutcome[Conversion], timeout: float
) -> int:
    name = f" {outcome.converter!r}" if outcome.converter else ""
    message = (
        f"{path.name}: the converter{name} did not finish within converter_timeout ({timeout:g} s)"
    )
    if args.json:
        print_json(
            {
                "file": str(path),
                "converter": outcome.converter,
                "error": message,
                "tried": [],
                "stack": outcome.stack,
            }
        )
    error(
        message,
        "fix the converter, or raise converter_timeout (--config) if such files are "
        f"legitimately slow; {_TO_ERROR_FOLDER}",
    )
    if outcome.stack and not args.json:
        err_console.print(f"where it was stuck:\n{outcome.stack}", markup=False)
    return EXIT_FAILED


def _why(
    path: Path, exc: ConversionError, manager: ConverterManager
) -> tuple[str, list[Candidate]]:
    """The hint that fits the error, and the converters tried when none took the file."""
    if exc.converter is not None:
        return f"fix the file or the converter; {_TO_ERROR_FOLDER}", []
    try:
        st = path.stat()
    except FileNotFoundError:
        where = f" (relative to the current folder, {Path.cwd()})" if not path.is_absolute() else ""
        return f"check the path{where}", []
    except OSError:
        return "check that this account may read the file and its folder", []
    if not stat.S_ISREG(st.st_mode):
        return "name a result file (not a folder)", []
    tried = [] if st.st_size == 0 else manager.candidates(path)
    if st.st_size == 0 or any(c.accepted for c in tried):  # refused before any converter ran
        return _TO_ERROR_FOLDER, []
    # the message itself says which converter to write or which patterns to extend
    return "each converter's answer is below", tried
