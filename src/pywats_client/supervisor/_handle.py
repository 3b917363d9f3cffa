"""One spawned worker process and its two pipes, as the supervisor sees it."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext
from typing import Any

from pywats_client.supervisor.worker import WorkerSpec, worker_main

__all__ = ["WorkerHandle", "spawn_context"]

log = logging.getLogger("pywats_client.supervisor")


def spawn_context() -> SpawnContext:
    """Always "spawn": identical on Windows and POSIX, and no forked locks or threads."""
    return multiprocessing.get_context("spawn")


class WorkerHandle:
    """A worker process: its sentinel, its command pipe and its event pipe."""

    def __init__(self, process: Any, commands: Connection, events: Connection) -> None:
        self.process = process
        self.commands: Connection | None = commands
        self.events: Connection | None = events
        self.pid: int = process.pid
        self.sentinel: int = process.sentinel
        self.exitcode: int | None = None

    @classmethod
    def spawn(cls, spec: WorkerSpec, ctx: SpawnContext | None = None) -> WorkerHandle:
        """Start a worker for ``spec``; raises OSError if the process cannot be created."""
        ctx = ctx or spawn_context()
        cmd_read, cmd_write = ctx.Pipe(duplex=False)
        ev_read, ev_write = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=worker_main,
            args=(spec, cmd_read, ev_write),
            name=f"pywats-worker-{spec.name}",
            daemon=False,  # workers may need child processes of their own
        )
        try:
            process.start()
        except BaseException:
            for conn in (cmd_read, cmd_write, ev_read, ev_write):
                conn.close()
            raise
        # Only the worker may hold its ends: then EOF tells each side the other died.
        cmd_read.close()
        ev_write.close()
        return cls(process, cmd_write, ev_read)

    @property
    def alive(self) -> bool:
        return self.exitcode is None

    def send(self, message: dict[str, Any]) -> bool:
        """Send a command; False if the worker can no longer receive it."""
        if self.commands is None:
            return False
        try:
            self.commands.send(message)
        except (OSError, EOFError, ValueError):
            return False
        return True

    def drain(self) -> list[dict[str, Any]]:
        """Every message the worker has sent so far (non-blocking)."""
        out: list[dict[str, Any]] = []
        conn = self.events
        if conn is None:
            return out
        try:
            while conn.poll():
                message = conn.recv()
                if isinstance(message, dict):
                    out.append(message)
        except (EOFError, OSError):
            conn.close()
            self.events = None
        return out

    def reap(self) -> int | None:
        """The exit code once the process has ended, else None (non-blocking)."""
        if self.exitcode is not None:
            return self.exitcode
        self.process.join(0)
        code = self.process.exitcode
        if code is not None:
            self.exitcode = int(code)
        return self.exitcode

    def terminate(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.process.terminate()

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.process.kill()

    def close(self) -> None:
        """Release pipes and the process object (after it has ended)."""
        for conn in (self.commands, self.events):
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.close()
        self.commands = None
        self.events = None
        if self.exitcode is not None:
            with contextlib.suppress(ValueError):
                self.process.close()
