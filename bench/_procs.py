"""Real processes for the scenarios: the stand-in server, stations, supervisors, workers.

Everything runs the way an operator runs it: ``pywats-client server``,
``pywats-client supervise --registry`` and ``pywats-client run --config`` as
child processes of this one. Only the stand-in's SQLite file is read directly
(read-only), to learn when it accepted each report.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import psutil

from bench._reports import report_json
from pywats_client.standin import StandinProcess, generate_token
from pywats_client.standin._store import DB_NAME
from pywats_client.supervisor._statusfile import STATUS_NAME, read_status

__all__ = [
    "BenchError",
    "ChildProcess",
    "Server",
    "Station",
    "Supervise",
    "cpu_seconds",
    "poll",
    "stage_burst",
    "stage_files",
    "station_cpu_seconds",
    "supervise",
    "worker_run",
    "write_stations",
]

T = TypeVar("T")


def cpu_seconds(*processes: psutil.Process) -> float:
    """User + system CPU these processes have used so far, in seconds."""
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def station_cpu_seconds(*workers: psutil.Process) -> float:
    """:func:`cpu_seconds` of workers and of their children, running or ended.

    A busy station's upload helper is a child of its worker: its CPU is the
    station's. A helper that ended was joined by its worker, so on Linux its CPU
    is in the worker's ``children_*`` times from then on (psutil gives 0 for
    those on Windows and macOS, where a helper ending inside a measured window
    is missed).
    """
    total = 0.0
    for worker in workers:
        times = worker.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
        for child in worker.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # it ended meanwhile: in children_*
                total += sum(child.cpu_times()[:2])
    return total


class BenchError(RuntimeError):
    """A scenario could not measure (a process failed, reports were lost or doubled)."""


def poll(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """``predicate()``'s first truthy value; :class:`BenchError` naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# --- the stand-in server --------------------------------------------------------------


class Server:
    """The stand-in as its own process, plus what the scenarios ask of it."""

    def __init__(self, data_dir: Path) -> None:
        self.process = StandinProcess(data_dir, generate_token())
        self.token = self.process.token
        self._http: httpx.Client | None = None

    def start(self) -> Server:
        self.process.start()
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Basic {self.token}"},
            trust_env=False,
            timeout=60,
        )
        return self

    def stop(self) -> int | None:
        if self._http is not None:
            self._http.close()
        return self.process.stop()

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def stats(self) -> dict[str, Any]:
        assert self._http is not None
        answer = self._http.get("/standin/stats")
        answer.raise_for_status()
        data: dict[str, Any] = answer.json()
        return data

    def reset(self) -> None:
        """Forget every report and counter (between repeats)."""
        assert self._http is not None
        self._http.post("/standin/reset").raise_for_status()

    def wait_for(self, count: int, timeout: float, what: str = "") -> dict[str, Any]:
        """Poll until the server holds ``count`` distinct reports; its stats then."""

        def done() -> dict[str, Any] | None:
            stats = self.stats()
            return stats if stats["distinct_reports"] >= count else None

        return poll(done, timeout, what or f"{count} reports at the stand-in", interval=0.1)

    def check_exactly_once(self, expected: int) -> None:
        """Every report arrived once, none was refused: else the figures mean nothing."""
        stats = self.stats()
        seen = (stats["distinct_reports"], stats["total_received"], stats["rejected"])
        if seen != (expected, expected, 0):
            raise BenchError(
                f"the stand-in holds {seen[0]} distinct reports, received {seen[1]} times, "
                f"rejected {seen[2]}; expected {expected} reports, each received once"
            )

    def accept_times(self, by: Literal["id", "sn"] = "id") -> dict[str, float]:
        """Report id (or serial number) -> wall-clock time the server took it in.

        Read from the server's SQLite file. The server stamps a report when it
        hands it to its writer; the 200 follows after the group commit (an
        fsync, a few ms).
        """
        path = self.process.data_dir / DB_NAME
        query = {
            "id": "SELECT id, first_received FROM reports",
            "sn": "SELECT sn, first_received FROM reports",
        }[by]
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute(query).fetchall()
        return {str(key): float(when) for key, when in rows}


# --- stations and the processes that run them ----------------------------------------


@dataclass(frozen=True)
class Station:
    name: str
    folder: Path

    @property
    def watch(self) -> Path:
        return self.folder / "in"

    @property
    def queue(self) -> Path:
        return self.folder / "queue"

    @property
    def config(self) -> Path:
        return self.folder / "config.json"


#: Config keys set for every station of this run (``python -m bench --set KEY=VALUE``),
#: over the scenario's own: one run measures one setting, side by side with another run.
STATION_SETTINGS: dict[str, Any] = {}


def write_stations(
    root: Path,
    count: int,
    server: Server | None,
    *,
    config: dict[str, Any] | None = None,
    supervisor: dict[str, Any] | None = None,
) -> tuple[Path, list[Station]]:
    """``count`` station folders with their configs, and ``instances.toml`` naming them."""
    settings = {"log_dir": "logs", **(supervisor or {})}
    lines = ["[supervisor]", *(f"{k} = {json.dumps(v)}" for k, v in settings.items())]
    stations = []
    for i in range(count):
        station = Station(f"st-{i + 1:02d}", root / f"st-{i + 1:02d}")
        station.watch.mkdir(parents=True)
        document: dict[str, Any] = {
            "instance_name": station.name,
            "watch_paths": ["in"],
            "queue_path": "queue",
            **(config or {}),
            **STATION_SETTINGS,
        }
        if server is not None:
            document |= {"service_address": server.url, "api_token": server.token}
        station.config.write_text(json.dumps(document, indent=1))
        lines += ["", "[[instance]]", f'name = "{station.name}"']
        lines.append(f'config = "{station.folder.name}/config.json"')
        stations.append(station)
    registry = root / "instances.toml"
    registry.write_text("\n".join(lines) + "\n")
    return registry, stations


def _command() -> list[str]:
    """``pywats-client`` as production starts it: the installed script, as the systemd
    unit does, on POSIX (each process a supervisor spawns runs the script again);
    ``python -m pywats_client``, as the Windows service recipes do, on Windows or
    where no script is installed."""
    script = Path(sys.executable).with_name("pywats-client")
    if sys.platform != "win32" and script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "pywats_client"]


class ChildProcess:
    """A ``pywats-client`` command as a child process in its own process group."""

    def __init__(self, args: Sequence[str], log: Path) -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYWATS_")}
        flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                [*_command(), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                creationflags=flags,
                start_new_session=sys.platform != "win32",
            )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self, timeout: float = 60.0) -> int:
        """Ask it to stop (SIGTERM / Ctrl+Break), as an operator would; kill after ``timeout``."""
        if self.alive():
            self.popen.send_signal(
                signal.CTRL_BREAK_EVENT  # type: ignore[attr-defined,unused-ignore]
                if sys.platform == "win32"
                else signal.SIGTERM
            )
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.wait()

    def kill(self) -> None:
        """Kill it and every process it started (a failed run must leave nothing behind)."""
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.pid)
            for proc in [*root.children(recursive=True), root]:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)


class Supervise(ChildProcess):
    """``pywats-client supervise --registry R``, with its ``status.json`` at hand."""

    def __init__(self, registry: Path) -> None:
        super().__init__(["supervise", "--registry", str(registry)], registry.parent / "sup.out")
        self.status_file = registry.parent / ".pywats" / STATUS_NAME

    def records(self) -> dict[str, dict[str, Any]]:
        document = read_status(self.status_file)
        return {r["name"]: r for r in document["instances"]} if document else {}

    def wait_running(self, names: Sequence[str], timeout: float = 120.0) -> dict[str, Any]:
        def running() -> dict[str, Any] | None:
            if not self.alive():
                raise BenchError(f"the supervisor exited:\n{self.tail()}")
            records = self.records()
            ok = all(records.get(n, {}).get("state") == "running" for n in names)
            return records if ok else None

        return poll(running, timeout, f"{len(names)} instance(s) running", interval=0.1)

    def worker_pids(self) -> dict[str, int]:
        return {n: int(r["pid"]) for n, r in self.records().items() if r.get("pid")}


@contextlib.contextmanager
def supervise(registry: Path) -> Iterator[Supervise]:
    """A running supervisor; stopped gracefully at the end (killed if that fails)."""
    sup = Supervise(registry)
    try:
        yield sup
    finally:
        code = sup.stop()
        if code != 0:
            sup.kill()


@contextlib.contextmanager
def worker_run(station: Station) -> Iterator[ChildProcess]:
    """``pywats-client run --config`` of one station (no supervisor)."""
    args = ["run", "--config", str(station.config), "--no-live"]
    worker = ChildProcess(args, station.folder / "run.out")
    try:
        yield worker
    finally:
        if worker.stop() != 0:
            worker.kill()


def stage_files(staging: Path, names_and_bodies: Sequence[tuple[str, bytes]]) -> list[Path]:
    """Write result files into ``staging`` (same disk as the watch folders), ready to drop."""
    staging.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, body in names_and_bodies:
        path = staging / name
        with open(path, "wb") as out:
            out.write(body)
        paths.append(path)
    return paths


def stage_burst(staging: Path, total: int, tag: str) -> list[Path]:
    """``total`` small WSJF result files ``<tag>-NNNNNN.json`` (the name is the serial)."""
    serials = [f"{tag}-{i:06d}" for i in range(total)]
    return stage_files(staging, [(f"{sn}.json", report_json(sn)) for sn in serials])
