"""Running a real ``pywats-client supervise`` process in e2e tests, and cleaning up after it.

A module's ``supervisor_factory`` fixture (``yield from supervisor_runs()``)
starts supervisors as real processes in their own session; ``SupervisorRun`` reads their
``status.json`` and remembers every worker pid it ever saw, so teardown can
make sure no process outlives the test, whatever the test did.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from pywats_client.supervisor._statusfile import STATUS_NAME, read_status
from tests.helpers import StopWaiting, wait_until

REPO = Path(__file__).resolve().parents[2]

#: Supervisor settings that keep e2e tests quick on a busy 2-core machine.
FAST_SUPERVISOR: dict[str, Any] = {
    "log_dir": "logs",
    "heartbeat_interval": 0.5,
    "heartbeat_timeout": 6.0,
    "startup_grace": 30.0,
    "stop_timeout": 5.0,
    "status_interval": 0.25,
    "restart_initial_delay": 0.2,
    "restart_max_delay": 5.0,
    "stable_after": 2.0,
}


def wsjf(sn: str) -> dict[str, Any]:
    return {
        "type": "T",
        "pn": "PN-SUP",
        "sn": sn,
        "rev": "A",
        "processCode": 10,
        "result": "P",
        "start": "2026-03-02T09:15:00+01:00",
        "root": {"id": 0, "group": "M", "stepType": "SequenceCall", "name": "Main", "status": "P"},
    }


def drop(folder: Path, sn: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{sn}.json.part"
    tmp.write_text(json.dumps(wsjf(sn)))
    return tmp.rename(folder / f"{sn}.json")


def station(root: Path, name: str, server: Any = None, **settings: Any) -> Path:
    """Write ``root/<name>/config.json`` (watch ``in``, queue ``queue``); returns its path."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "instance_name": name,
        "service_address": server.url if server is not None else "",
        "api_token": server.token if server is not None else "",
        "watch_paths": ["in"],
        "queue_path": "queue",
        "converter_path": "converters",
        "ready_after": 0.1,
        "rescan_interval": 2.0,
        **settings,
    }
    path = folder / "config.json"
    path.write_text(json.dumps(config, indent=1))
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def registry(root: Path, names: list[str], *, disabled: tuple[str, ...] = (), **sup: Any) -> Path:
    """Write ``root/instances.toml`` for stations made with :func:`station`."""
    settings = {**FAST_SUPERVISOR, **sup}
    lines = ["[supervisor]"]
    lines += [f"{k} = {_toml(v)}" for k, v in settings.items() if v is not None]
    for name in names:
        lines += [
            "",
            "[[instance]]",
            f'name = "{name}"',
            f'config = "{name}/config.json"',
            f"enabled = {_toml(name not in disabled)}",
        ]
    path = root / "instances.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class SupervisorRun:
    """One ``pywats-client supervise`` process."""

    def __init__(self, registry_path: Path, env: dict[str, str], args: list[str]) -> None:
        self.registry = registry_path
        self.state_dir = registry_path.parent / ".pywats"
        self.output = (
            registry_path.parent
            / f"supervise-{len(list(registry_path.parent.glob('supervise-*')))}.out"
        )
        self.seen_pids: set[int] = set()
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pywats_client",
                    "supervise",
                    "--registry",
                    str(registry_path),
                    *args,
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.proc.pid

    # --- reading status -------------------------------------------------------------

    def document(self) -> dict[str, Any] | None:
        doc = read_status(self.state_dir / STATUS_NAME)
        if doc is not None and doc["supervisor"]["pid"] == self.pid:
            for record in doc["instances"]:
                if record.get("pid"):
                    self.seen_pids.add(record["pid"])
            return doc
        return None

    def instances(self) -> dict[str, dict[str, Any]]:
        doc = self.document()
        return {r["name"]: r for r in doc["instances"]} if doc else {}

    def instance(self, name: str) -> dict[str, Any]:
        return self.instances().get(name, {})

    def wait(
        self,
        predicate: Callable[[dict[str, dict[str, Any]]], Any],
        timeout: float = 30.0,
        what: str = "status",
    ) -> Any:
        def check() -> Any:
            if self.proc.poll() is not None:
                raise StopWaiting(f"supervisor exited {self.proc.returncode}:\n{self.text()}")
            return predicate(self.instances())

        return wait_until(check, timeout, 0.02, message=lambda: f"{what}; last: {self.instances()}")

    def wait_state(self, name: str, *states: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait(
            lambda i: i.get(name) if i.get(name, {}).get("state") in states else None,
            timeout,
            f"{name} in {states}",
        )

    def wait_running(self, *names: str, timeout: float = 45.0) -> dict[str, dict[str, Any]]:
        return self.wait(
            lambda i: (
                i
                if all(
                    i.get(n, {}).get("state") == "running" and i[n].get("last_heartbeat_at")
                    for n in names
                )
                else None
            ),
            timeout,
            f"{names} running",
        )

    def wait_status_writes(self, count: int, timeout: float = 30.0) -> None:
        """Wait until the supervisor has written ``count`` more status snapshots.

        The yardstick of negative checks ("nothing restarted, nothing moved"):
        the supervisor looked at its workers ``count`` more times, rather than
        some seconds went by. Snapshots are told apart by ``updated_at``.
        """
        seen: set[float] = set()

        def written() -> bool:
            if self.proc.poll() is not None:
                raise StopWaiting(f"supervisor exited {self.proc.returncode}:\n{self.text()}")
            doc = self.document()
            if doc is not None:
                seen.add(doc["supervisor"]["updated_at"])
            return len(seen) > count  # the first one seen was already there

        wait_until(
            written, timeout, 0.02, message=lambda: f"{count} more status writes (saw {len(seen)})"
        )

    def text(self) -> str:
        try:
            return self.output.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # --- ending -----------------------------------------------------------------------

    def worker_pids(self) -> set[int]:
        pids = set(self.seen_pids)
        with contextlib.suppress(psutil.Error):
            pids.update(c.pid for c in psutil.Process(self.pid).children(recursive=True))
        return pids

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful stop) and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)

    def cleanup(self) -> None:
        pids = self.worker_pids()
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate(timeout=20)
        if self.proc.poll() is None:
            self.kill()
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if "python" in proc.name().lower() or proc.status() == psutil.STATUS_ZOMBIE:
                    proc.kill()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWATS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def supervisor_runs() -> Iterator[Callable[..., SupervisorRun]]:
    """Body of a ``supervisor_factory`` fixture: start supervisors, clean all up after.

    ``start(registry_path, *args, **env)`` runs ``pywats-client supervise``.
    """
    runs: list[SupervisorRun] = []

    def start(registry_path: Path, *args: str, **env: str) -> SupervisorRun:
        run = SupervisorRun(registry_path, clean_env(**env), list(args))
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.cleanup()
