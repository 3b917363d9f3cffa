"""Crash-torture: stations under a real supervisor, files streaming in, faults of every kind.

For N minutes, result files (valid ones, slowly written ones and every kind of
bad one) stream into K stations' watch folders while workers and the
supervisor are SIGKILLed at random moments, the stand-in server goes down,
answers 503/429/400, answers too slowly, a station gets a wrong token, a queue's
disk fills up, corrupt files appear in the queues and the workers' wall clocks
jump. Then every fault ends, the stations drain, rejected reports are requeued,
and an audit checks where every file ended up. Prints ONE summary line; exits
1 if anything was lost, doubled or stuck, or the audit found a problem (the
findings are printed first, on stderr).

    .venv/bin/python -m bench.torture --minutes 5                 # all faults mixed
    .venv/bin/python -m bench.torture --minutes 1 --faults kill,down --seed 7
    .venv/bin/python bench/torture.py --minutes 1 --stations 2   # works as a script too

Needs root for the disk-full fault (a tmpfs, else a loop-mounted image);
without it that fault is skipped and the summary says so. See docs/reliability.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, the repository root must be on sys.path for ``tests._torture``
# (the engine shared with the CI tests).
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import time  # noqa: E402

from tests._torture import Settings, Torture, parse_kinds  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="streaming time (default 5)")
    parser.add_argument("--stations", type=int, default=3, help="station instances (default 3)")
    parser.add_argument(
        "--faults",
        default="all",
        help="all, none, or a comma list of: kill (= kill-worker,kill-supervisor), "
        "kill-worker, kill-supervisor, down, 503, 429, 400, slow, token, disk-full, "
        "corrupt-queue, bad-input, clock",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    parser.add_argument("--rate", type=float, default=5.0, help="files per second (default 5)")
    parser.add_argument(
        "--clock-jump",
        type=float,
        default=3600.0,
        help="seconds a big wall-clock jump moves (default 3600; 15 s nudges come in between)",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=240.0, help="seconds allowed to settle at the end"
    )
    parser.add_argument("--root", type=Path, default=None, help="work folder (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the fault timeline")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        kinds = parse_kinds(args.faults)
    except ValueError as exc:
        print(f"error: --faults: {exc}", file=sys.stderr)
        return 2
    if args.minutes <= 0 or args.stations < 1 or args.rate <= 0:
        print("error: --minutes, --stations and --rate must be positive", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else int(time.time()) % 100_000
    settings = Settings(
        seconds=args.minutes * 60,
        stations=args.stations,
        faults=kinds,
        seed=seed,
        rate=args.rate,
        clock_jump=args.clock_jump,
        drain_timeout=args.drain_timeout,
        root=args.root,
        keep=args.keep,
        log=(lambda line: print(line, file=sys.stderr, flush=True)) if args.verbose else None,
    )
    result = Torture(settings).run()
    for finding in result.findings:
        print(f"finding: {finding}", file=sys.stderr)
    if result.root is not None:
        print(f"work folder kept: {result.root}", file=sys.stderr)
    print(result.summary(), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
