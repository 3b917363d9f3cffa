"""What every scenario gets: its folder, how many repeats, the shared stand-in, a log."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench._procs import Server

__all__ = ["Context"]

T = TypeVar("T")


@dataclass
class Context:
    """One ``python -m bench`` run; scenarios ask it for sizes, folders and the server."""

    root: Path
    quick: bool = False
    #: ``--repeat N``: overrides every scenario's default number of repeats.
    repeat: int | None = None
    _server: Server | None = field(default=None, repr=False)
    _folders: int = 0

    def repeats(self, default: int, quick: int = 1) -> int:
        if self.repeat is not None:
            return self.repeat
        return quick if self.quick else default

    def size(self, default: T, quick: T) -> T:
        """A size (reports, kills, instances) for this mode."""
        return quick if self.quick else default

    def folder(self, name: str) -> Path:
        """A fresh empty folder for one measurement, on the disk under test."""
        self._folders += 1
        path = self.root / f"{self._folders:03d}-{name}"
        path.mkdir(parents=True)
        return path

    def server(self) -> Server:
        """The stand-in server (one process for the whole run), reset to empty."""
        if self._server is None or not self._server.process.is_running():
            self._server = Server(self.root / "standin").start()
            self.log(f"stand-in pid {self._server.pid} at {self._server.url}")
        self._server.reset()
        return self._server

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def discard(self, folder: Path) -> None:
        """Remove a measurement's folder (100,000 queue files do not stay behind)."""
        shutil.rmtree(folder, ignore_errors=True)

    @staticmethod
    def log(line: str) -> None:
        """Progress, on stderr: the table on stdout stays clean."""
        print(f"  {line}", file=sys.stderr, flush=True)
