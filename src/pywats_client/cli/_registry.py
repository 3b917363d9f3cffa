"""The ``--registry`` option shared by the commands that work on an instances registry."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pywats_client.errors import RegistryError

if TYPE_CHECKING:
    from pywats_client.core.config import ClientConfig

__all__ = [
    "DEFAULT_REGISTRY",
    "REGISTRY_ENV_VAR",
    "add_registry_option",
    "instance_config",
    "registry_path",
]

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
    """The registry the command works on; a missing file is a :class:`RegistryError` (exit 2).

    The error says where the path came from (``--registry``, the environment
    or the default), since a user without one rarely knows which was used.
    """
    given: Path | None = getattr(args, "registry", None)
    from_env = os.environ.get(REGISTRY_ENV_VAR)
    if given is not None:
        path, source, fix = given, "given with --registry", "check that path"
    elif from_env:
        path, source = Path(from_env), f"from ${REGISTRY_ENV_VAR}"
        fix = f"fix ${REGISTRY_ENV_VAR} or pass --registry FILE"
    else:
        path = Path(DEFAULT_REGISTRY)
        source = (
            f"no --registry given and ${REGISTRY_ENV_VAR} is not set, so {DEFAULT_REGISTRY} "
            "in the current folder"
        )
        fix = f"pass --registry FILE or set ${REGISTRY_ENV_VAR}"
    if not path.exists():
        raise RegistryError(
            f"registry file not found ({source}); {fix}. To write one: 'pywats-client init "
            "--config FILE' writes a station config, and the registry lists each station as "
            "an [[instance]] with its name and config (example in docs/quickstart.md, "
            "section 5)",
            file=path.absolute(),  # where it was looked for
        )
    return path


def instance_config(args: argparse.Namespace, name: str) -> ClientConfig:
    """The config of the instance ``name`` of the registry (errors exit 2, naming the known)."""
    from pywats_client.core.registry import Registry

    registry = Registry.load(registry_path(args), check_configs=False)
    entry = registry.get(name)
    if entry is None:
        raise RegistryError(
            f"no instance named {name!r} (instances: {', '.join(registry.names) or 'none'}); "
            "check the name, or give the instance's config with --config FILE",
            file=registry.path,
            key="instance.name",
        )
    return registry.load_config(entry)
