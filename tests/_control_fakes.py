"""A stand-in supervisor for control-channel tests: records in memory, no processes.

:class:`FakeSupervisor` implements :class:`pywats_client.control._commands.ControlTarget`.
Commands change its records the way the real supervisor's lifecycle does,
only faster and deterministically: a restart goes ``stopping`` and then, after
``settle`` seconds (in a timer thread), ``running`` with a new pid.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pywats_client.control._server import ControlServer
from pywats_client.errors import ConfigError

_pids = itertools.count(40_000)


def write_registry(root: Path, names: list[str], *, disabled: tuple[str, ...] = ()) -> Path:
    """``root/instances.toml`` naming ``names`` (configs need not exist for control)."""
    lines = ["[supervisor]", 'state_dir = ".pywats"']
    for name in names:
        enabled = "false" if name in disabled else "true"
        lines += ["", "[[instance]]", f'name = "{name}"', f'config = "{name}.json"']
        lines.append(f"enabled = {enabled}")
    path = root / "instances.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class FakeSupervisor:
    def __init__(
        self,
        registry_path: Path,
        names: list[str],
        *,
        disabled: tuple[str, ...] = (),
        settle: float = 0.1,
    ) -> None:
        self.registry_path = registry_path
        self.settle = settle
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []
        self.reload_problem: str | None = None
        self.stopping = False
        self.block = threading.Event()  # set: records() hangs (a stuck supervisor loop)
        self.crash_on_start: set[str] = set()
        self.timers: list[threading.Timer] = []
        self.records_: dict[str, dict[str, Any]] = {
            name: {
                "name": name,
                "state": "disabled" if name in disabled else "running",
                "enabled": name not in disabled,
                "pid": None if name in disabled else next(_pids),
                "restarts": 0,
                "last_error": None,
                "paused": False,
                "removed": False,
                "snapshot": None if name in disabled else {"uploads": "idle"},
            }
            for name in names
        }

    # --- ControlTarget -------------------------------------------------------------------

    @property
    def shutting_down(self) -> bool:
        return self.stopping

    def records(self) -> list[dict[str, Any]]:
        if self.block.is_set():
            threading.Event().wait(60)
        with self.lock:
            return [dict(r) for r in self.records_.values()]

    def reload_now(self) -> str | None:
        self.calls.append(("reload", ""))
        return self.reload_problem

    def start_instance(self, name: str) -> None:
        record = self._command("start", name)
        if not record["enabled"]:
            raise ConfigError(
                f"instance {name!r} is disabled in the registry; set enabled = true first",
                file=self.registry_path,
                key="instance.enabled",
            )
        if record["pid"] is None:
            self._update(name, state="backoff")
            self._later(name, self._come_up)

    def stop_instance(self, name: str) -> None:
        record = self._command("stop", name)
        if record["pid"] is not None:
            self._update(name, state="stopping")
            self._later(name, lambda n: self._update(n, state="stopped", pid=None, snapshot=None))
        else:
            self._update(name, state="stopped" if record["enabled"] else "disabled")

    def restart_instance(self, name: str) -> None:
        record = self._command("restart", name)
        if not record["enabled"]:
            return
        if record["pid"] is not None:
            self._update(name, state="stopping")
            self._update(name, restarts=record["restarts"] + 1)
        self._later(name, self._come_up)

    def pause_instance(self, name: str) -> None:
        self._pause(name, True)

    def resume_instance(self, name: str) -> None:
        self._pause(name, False)

    # --- helpers ------------------------------------------------------------------------

    def record(self, name: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.records_[name])

    def cancel(self) -> None:
        for timer in self.timers:
            timer.cancel()

    def _command(self, command: str, name: str) -> dict[str, Any]:
        self.calls.append((command, name))
        return self.record(name)

    def _update(self, name: str, **changes: Any) -> None:
        with self.lock:
            self.records_[name].update(changes)

    def _later(self, name: str, action: Any) -> None:
        timer = threading.Timer(self.settle, action, args=(name,))
        timer.daemon = True
        self.timers.append(timer)
        timer.start()

    def _come_up(self, name: str) -> None:
        if name in self.crash_on_start:
            record = self.record(name)
            self._update(
                name,
                state="backoff",
                pid=None,
                restarts=record["restarts"] + 1,
                last_error="worker exited with code 1",
            )
            return
        paused = self.record(name)["paused"]
        self._update(
            name,
            state="paused" if paused else "running",
            pid=next(_pids),
            snapshot={"uploads": "paused" if paused else "idle"},
        )

    def _pause(self, name: str, paused: bool) -> None:
        record = self._command("pause" if paused else "resume", name)
        self._update(name, paused=paused)
        if record["pid"] is not None:
            self._update(name, state="paused" if paused else "running")
            # the worker confirms with its next heartbeat
            uploads = "paused" if paused else "idle"
            self._later(name, lambda n: self._update(n, snapshot={"uploads": uploads}))


@contextmanager
def serving(fake: FakeSupervisor, state_dir: Path, **options: Any) -> Iterator[ControlServer]:
    server = ControlServer(fake, state_dir, **options)
    server.start()
    try:
        yield server
    finally:
        server.close()
        fake.cancel()
