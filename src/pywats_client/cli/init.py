"""`pywats-client init`: write a commented starting config for one station."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path, PureWindowsPath
from typing import Any

from pywats_client.cli._output import EXIT_OK, EXIT_USAGE, console, error
from pywats_client.core.config import COMMENT_PREFIX, ClientConfig

_COMMENTS = {
    f"{COMMENT_PREFIX} about": "pywats-client station config. Keys starting with // are comments.",
    f"{COMMENT_PREFIX} paths": "Relative paths are relative to this file's folder.",
    f"{COMMENT_PREFIX} token": "Paste the API token from WATS into api_token, or set "
    "PYWATS_API_TOKEN in the service's environment instead.",
    f"{COMMENT_PREFIX} reference": "Every key is described in docs/configuration.md.",
}


#: Said on Windows, where the file takes the permissions of its folder.
WINDOWS_PROTECTION = "protect its folder: docs/operations.md, 'Protect the folder'"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "init",
        help="write a commented starting config",
        description="Write a starting config file for one station (owner-only, 0600).",
        epilog="example: pywats-client init --config station-1.json --name line2-st4 "
        "--server https://acme.wats.com --watch C:\\TestResults",
    )
    parser.add_argument("--config", required=True, type=Path, help="config file to write")
    parser.add_argument("--name", default="pywats-station", help="instance_name")
    parser.add_argument("--server", default="", help="service_address (WATS server URL)")
    parser.add_argument(
        "--watch",
        action="append",
        type=Path,
        default=[],
        help="folder the tester writes results into (repeatable)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path: Path = args.config
    if path.exists() and not args.force:
        error(f"{path}: already exists", "pass --force to overwrite it, or choose another path")
        return EXIT_USAGE
    config = ClientConfig.from_dict(
        {
            **_COMMENTS,
            "instance_name": args.name,
            "service_address": args.server,
            "watch_paths": [_from_here(p) for p in args.watch] or ["test_data"],
        }
    )
    config.save(path)
    protected = WINDOWS_PROTECTION if sys.platform == "win32" else "owner-only"
    console.print(  # soft_wrap: the command to copy is never split across lines
        f"wrote {path} ({protected}). Next: set api_token, then "
        f"'pywats-client run --config {path}'.",
        markup=False,
        soft_wrap=True,
    )
    return EXIT_OK


def _from_here(path: Path) -> str:
    """``--watch in`` means ./in where the command runs, not next to the config file.

    (The config resolves relative paths against its own folder.) A Windows path
    with a drive (``D:\\TestResults``) is kept as typed on any OS.
    """
    if path.is_absolute() or PureWindowsPath(path).anchor:
        return str(path)
    return os.path.normpath(Path.cwd() / path)  # ../../results/eol: the folder it names
