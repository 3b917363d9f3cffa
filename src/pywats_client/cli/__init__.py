"""The ``pywats-client`` command.

Light on import: on POSIX, every process spawned by a supervisor started from
the ``pywats-client`` script (each worker, each upload helper) runs the script
again as its ``__mp_main__`` (multiprocessing re-runs a main script given by
path; it skips ``python -m pywats_client`` and the Windows ``.exe`` launcher),
and the script imports this package. The command itself, and rich with it,
loads only when :func:`main` runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pywats-client``; returns the process exit code."""
    import multiprocessing

    # A frozen (PyInstaller) exe re-enters here in each spawned process: let it
    # become that process before the command is imported.
    multiprocessing.freeze_support()
    from pywats_client.cli._main import main as run_command

    return run_command(argv)


def build_parser() -> argparse.ArgumentParser:
    """The command's parser, every sub-command included (docs and tests read it)."""
    from pywats_client.cli._main import build_parser as build_command_parser

    return build_command_parser()
