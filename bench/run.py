"""``python -m bench``: every scenario against real processes, one table of figures.

    python -m bench                      # all scenarios, default sizes (< 10 minutes)
    python -m bench --quick              # small sizes, 1 repeat, targets not judged (< 1 minute)
    python -m bench --only e2e,latency --repeat 5 --json results.json

Progress goes to stderr, the table to stdout. Exit code 0: every scenario ran
and (without ``--quick``) every target was met; 1: a target was missed or a
scenario failed (the table says which); 2: bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench._context import Context
from bench._machine import ForeignCpu, describe, load_average, summary_line
from bench._procs import STATION_SETTINGS
from bench._stats import Figure, render_table
from bench.scenarios import SCENARIOS, load
from pywats_client.core import ClientConfig

__all__ = ["main"]


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(SCENARIOS)}"
        )
    return names


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


#: Keys the scenarios set themselves: where a station is, its server and token.
_OWN_KEYS = {"instance_name", "watch_paths", "queue_path", "service_address", "api_token"}


def _setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or key not in ClientConfig.model_fields:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not KEY=VALUE with KEY a station config key (docs/configuration.md)"
        )
    if key in _OWN_KEYS:
        raise argparse.ArgumentTypeError(f"{key} is the benchmark's to set, not --set's")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks against real processes; prints one table.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and 1 repeat, targets not judged: checks the suite works (< 1 min)",
    )
    parser.add_argument(
        "--only",
        type=_names,
        default=list(SCENARIOS),
        metavar="NAME[,NAME]",
        help=f"run only these scenarios: {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--repeat", type=_positive, default=None, metavar="N", help="repeats of each figure"
    )
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write JSON")
    parser.add_argument(
        "--set",
        type=_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a station config key for every station of the run, e.g. upload_helper=never "
        "(VALUE is JSON, else a string); repeatable",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="folder to work in (default: the system temp folder); its disk is the one measured",
    )
    return parser.parse_args(argv)


def _run_scenario(
    name: str, ctx: Context, foreign: ForeignCpu
) -> tuple[list[Figure], dict[str, Any]]:
    module = load(name)
    first_line = (module.__doc__ or name).strip().splitlines()[0]
    print(f"[{name}] {first_line}", file=sys.stderr, flush=True)
    before, began, others = load_average(), time.monotonic(), foreign.seconds()
    info: dict[str, Any] = {"load_before": before}
    figures: list[Figure] = []
    try:
        figures = module.run(ctx)
    except Exception as exc:  # reported in the table's footer; the other scenarios still run
        traceback.print_exc(file=sys.stderr)
        info["error"] = f"{type(exc).__name__}: {exc}"
    elapsed = time.monotonic() - began
    info["seconds"] = round(elapsed, 1)
    info["load_after"] = load_average()
    cores = os.cpu_count() or 1
    info["others_cpu_percent"] = round((foreign.seconds() - others) / elapsed / cores * 100, 1)
    return figures, info


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    judged = not args.quick
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = datetime.now(timezone.utc)
    root = Path(tempfile.mkdtemp(prefix="pywats-bench-", dir=args.dir))
    machine = describe(root)
    print(f"{command.strip()}  ({started:%Y-%m-%d %H:%M} UTC)")
    print(summary_line(machine), flush=True)
    STATION_SETTINGS.update(args.set)
    ctx = Context(root, quick=args.quick, repeat=args.repeat)
    figures: list[Figure] = []
    runs: dict[str, dict[str, Any]] = {}
    began = time.monotonic()
    foreign = ForeignCpu().start()
    try:
        for name in args.only:
            found, runs[name] = _run_scenario(name, ctx, foreign)
            figures += found
    finally:
        foreign.stop()
        ctx.close()
        shutil.rmtree(root, ignore_errors=True)
    total = time.monotonic() - began

    print()
    print(render_table(figures, judged))
    print()
    failed = {name: info["error"] for name, info in runs.items() if "error" in info}
    for name, error in failed.items():
        print(f"FAILED {name}: {error}")
    missed = [f for f in figures if f.verdict(judged) == "MISS"]
    print(f"took {total:.0f} s; per scenario: seconds, load average before -> after, and the CPU")
    print("that processes outside this benchmark used meanwhile (% of the machine):")
    for name, info in runs.items():
        print(
            f"  {name:<10} {info['seconds']:5.0f} s  load {info['load_before'] or 0:4.1f} -> "
            f"{info['load_after'] or 0:4.1f}  others {info['others_cpu_percent']:4.1f}%"
        )
    targets = [f for f in figures if f.target is not None]
    if judged:
        print(f"targets: {len(targets) - len(missed)} of {len(targets)} met (judged on medians)")
    else:
        print("targets not judged (--quick: sizes too small to mean anything)")
    if args.json:
        _write_json(
            args.json,
            {
                "date": started.isoformat(timespec="seconds"),
                "command": command.strip(),
                "quick": args.quick,
                "machine": machine,
                "seconds": round(total, 1),
                "scenarios": runs,
                "figures": [f.to_dict(judged) for f in figures],
            },
        )
    return 1 if failed or missed else 0
