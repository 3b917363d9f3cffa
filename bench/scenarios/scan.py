"""Scan: what one full rescan of a large watch folder costs the station.

A station rescans its watch folders every ``rescan_interval`` (events can be
lost), and with post action ``keep`` the results stay there for months: the
folder can hold tens of thousands of files, every one of them listed, stat'ed
and checked against the name rules at every rescan, in a thread that holds the
interpreter lock the event loop needs too.

* **listing**: ``os.scandir`` of the folder with each entry's ``stat()``, the
  least any scan that notices changed files must do;
* **rescan**: the watcher's own ``scan_root`` with the product's default
  ``file_patterns`` and ``ignore_patterns``;
* **name rules**: ``FilterRules.accepts`` alone, per 1,000 names.

Listing and rescan alternate within each repeat (the listing first), so the
ratio compares them on the same warm cache.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench._context import Context
from bench._procs import BenchError
from bench._stats import Figure
from pywats_client.core import ClientConfig
from pywats_client.services._scan import FilterRules, build_roots, scan_root

NAME = "scan"


def _listing_ms(folder: Path) -> float:
    began = time.perf_counter()
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False) and entry.is_file():
                entry.stat()
    return (time.perf_counter() - began) * 1000


def _rescan_ms(config: ClientConfig, rules: FilterRules, count: int) -> float:
    [root] = build_roots(config)
    began = time.perf_counter()
    found = sum(1 for _ in scan_root(root, rules))
    spent = (time.perf_counter() - began) * 1000
    if found != count:
        raise BenchError(f"the rescan found {found} of {count} result files")
    return spent


def run(ctx: Context) -> list[Figure]:
    count = ctx.size(50_000, quick=2_000)
    folder = ctx.folder("scan")
    watch = folder / "watch"
    watch.mkdir()
    for n in range(count):
        (watch / f"UUT{n:07d}_20261127.json").write_bytes(b"{}")
    config = ClientConfig(watch_paths=[watch], queue_path=folder / "queue")
    rules = FilterRules.for_config(config)
    names = [path.name for path in watch.iterdir()]
    listing: list[float] = []
    rescan: list[float] = []
    per_name: list[float] = []
    for r in range(ctx.repeats(5)):
        listing.append(_listing_ms(watch))
        rescan.append(_rescan_ms(config, rules, count))
        began = time.perf_counter()
        taken = sum(1 for name in names if rules.accepts(name))
        per_name.append((time.perf_counter() - began) * 1e9 / len(names))
        if taken != count:
            raise BenchError(f"the default rules took {taken} of {count} result files")
        ctx.log(
            f"repeat {r + 1}: listing {listing[-1]:,.0f} ms, rescan {rescan[-1]:,.0f} ms, "
            f"rules {per_name[-1]:,.0f} us per 1,000 names"
        )
    ctx.discard(folder)
    return [
        Figure(NAME, f"listing + stat of {count:,} files", "ms", listing),
        Figure(NAME, f"watcher's rescan of the same {count:,} files", "ms", rescan),
        Figure(
            NAME,
            "rescan / listing",
            "ratio",
            [s / b for s, b in zip(rescan, listing, strict=True)],
        ),
        Figure(NAME, "name rules (default patterns), per 1,000 names", "us", per_name),
    ]
