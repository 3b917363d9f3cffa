"""The ``pywats-client`` command.

Light on import: with the ``pywats-client`` script, every process the supervisor
spawns (each worker, each upload helper) runs the script again as its
``__mp_main__``, and the script imports this package. The command itself, and
rich with it, loads only when :func:`main` runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pywats-client``; returns the process exit code."""
    from pywats_client.cli._main import main as run

    return run(argv)


def build_parser() -> argparse.ArgumentParser:
    """The command's parser, every sub-command included (docs and tests read it)."""
    from pywats_client.cli._main import build_parser as build

    return build()
