"""The ``--registry`` option shared by the commands that work on an instances registry."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["DEFAULT_REGISTRY", "REGISTRY_ENV_VAR", "add_registry_option", "registry_path"]

#: Environment variable naming the registry when ``--registry`` is not given.
REGISTRY_ENV_VAR = "PYWATS_REGISTRY"
DEFAULT_REGISTRY = "instances.toml"


def add_registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"instances registry (default: ${REGISTRY_ENV_VAR} or ./{DEFAULT_REGISTRY})",
    )


def registry_path(args: argparse.Namespace) -> Path:
    given: Path | None = getattr(args, "registry", None)
    if given is not None:
        return given
    return Path(os.environ.get(REGISTRY_ENV_VAR) or DEFAULT_REGISTRY)
