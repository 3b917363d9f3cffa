"""Run the demo: stand-in server, real supervisor, a stream of files, a kill, a verdict.

One loop on the main thread drives everything on a schedule (drop the next
file, kill a worker halfway, poll the status, the server and the Error
folders, redraw), so a Ctrl+C lands in one place and cleanup always runs in
the same order: supervisor (gracefully), server, folder.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from rich.console import Console

from pywats_client._demo._procs import SupervisorProcess, kill_process
from pywats_client._demo._samples import PlannedFile, plan_files
from pywats_client._demo._setup import DEMO_SUPERVISOR, DemoLayout, write_demo_folder
from pywats_client._demo._summary import (
    DemoSummary,
    ErroredFile,
    Kill,
    is_complete,
    read_errored,
    summarize,
)
from pywats_client._demo._view import Progress, Tally, render_view
from pywats_client.errors import FatalError
from pywats_client.supervisor import InstanceStatus, list_instances

__all__ = ["DemoOptions", "run_demo"]

#: Seconds between two looks at the status, the server and the Error folders.
POLL_INTERVAL = 0.3
#: Seconds between two redraws of the live view.
REDRAW_INTERVAL = 0.2
#: Seconds between two writes of the slowly written file (well under ready_after).
SLOW_CHUNK_INTERVAL = 0.06
SLOW_CHUNKS = 20


@dataclass(frozen=True)
class DemoOptions:
    """What ``pywats-client demo`` was asked to do."""

    stations: int = 2
    files: int = 40
    keep: bool = False
    timeout: float = 60.0
    #: Seconds over which the files are dropped (the stream a busy line would write).
    drop_seconds: float = 8.0
    #: Kill one worker halfway through the stream.
    kill: bool = True
    seed: int | None = None


@dataclass(frozen=True)
class _Observed:
    statuses: list[InstanceStatus]
    server_reports: list[dict[str, Any]]
    errored: list[ErroredFile]


class _SlowWriter(threading.Thread):
    """Writes one file in small pieces, as a tester that logs while it tests."""

    def __init__(self, path: Path, content: str, stop: threading.Event) -> None:
        super().__init__(name="demo-slow-writer", daemon=True)
        self.path = path
        self.content = content.encode("utf-8")
        self.stop_event = stop
        self.finished = False

    def run(self) -> None:
        size = max(1, -(-len(self.content) // SLOW_CHUNKS))
        with open(self.path, "wb") as handle:
            for start in range(0, len(self.content), size):
                handle.write(self.content[start : start + size])
                handle.flush()
                if self.stop_event.wait(SLOW_CHUNK_INTERVAL):
                    break
        self.finished = True


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (and Ctrl+Break on Windows) stop the demo like Ctrl+C: with cleanup."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous: dict[int, Any] = {}
    for name in ("SIGTERM", "SIGBREAK"):
        signum = getattr(signal, name, None)
        if signum is not None:
            with contextlib.suppress(OSError, ValueError):
                previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(signum, old)


class Demo:
    """One run of the demo. ``console=None`` runs without the live view (``--json``)."""

    def __init__(self, options: DemoOptions, console: Console | None = None) -> None:
        if options.stations < 1:
            raise ValueError("stations must be at least 1")
        if options.files < 1:
            raise ValueError("files must be at least 1")
        self.options = options
        self.console = console
        self.root: Path | None = None
        self.layout: DemoLayout | None = None
        self.planned: list[PlannedFile] = []
        self.dropped: list[PlannedFile] = []
        self.kills: list[Kill] = []
        self.events: deque[str] = deque(maxlen=6)
        self.tally = Tally()
        self.cleanup_error: str | None = None
        self._server: Any = None
        self._url = ""
        self._token = ""
        self._supervisor: SupervisorProcess | None = None
        self._slow: _SlowWriter | None = None
        self._stop_writing = threading.Event()
        self._http: httpx.Client | None = None
        self._started = time.monotonic()
        self._observed = _Observed([], [], [])
        self._phase = "starting"
        self._last_observe = 0.0
        self._last_redraw = 0.0
        self._kill_time = 0.0
        self._kill_due = False
        self._keep = options.keep

    # --- the run ---------------------------------------------------------------------

    def run(self) -> DemoSummary:
        """Run to the verdict (or the deadline, or Ctrl+C); always cleans up.

        The folder is removed afterwards unless ``keep`` was asked for or the
        demo failed (an error, or files lost or doubled): then it stays, for
        the operator to see why, and the summary (or the error) names it.
        """
        self._started = time.monotonic()
        deadline = self._started + self.options.timeout
        timed_out = interrupted = False
        summary: DemoSummary | None = None
        live = self._live()
        try:
            with _terminate_as_interrupt(), live:
                try:
                    self._setup()
                    timed_out = not self._play(deadline, live)
                except KeyboardInterrupt:
                    interrupted = True
                    self._event("interrupted: stopping everything")
                    self._redraw(live, force=True)
                if self.layout is not None:
                    self._observe(force=True)
                summary = self._summary(timed_out, interrupted)
        except Exception as exc:
            if self.root is not None and isinstance(exc, FatalError):
                self._keep = True
                raise FatalError(f"{exc} (the demo folder is kept at {self.root})") from exc
            raise
        finally:
            if summary is not None and not summary.ok and not summary.interrupted:
                self._keep = True
            self._shutdown()
        assert summary is not None
        return replace(
            summary,
            folder=str(self.root) if self._keep and self.root else None,
            supervisor_pid=self._supervisor.pid if self._supervisor else None,
            worker_pids=sorted(self._supervisor.seen) if self._supervisor else [],
        )

    def _setup(self) -> None:
        from pywats_client.standin import ServerThread, StandinServer, generate_token

        options = self.options
        self.root = Path(tempfile.mkdtemp(prefix="pywats-demo-")).resolve()
        self._token = generate_token()
        self._server = ServerThread(StandinServer(token=self._token, data_dir=self.root / "server"))
        self._server.start()
        self._url = self._server.server.url
        self._http = httpx.Client(
            base_url=self._url, headers={"Authorization": f"Basic {self._token}"}, timeout=10.0
        )
        self._event(f"stand-in WATS server listening on {self._url}")
        self.layout = write_demo_folder(self.root, options.stations, self._url, self._token)
        names = [s.name for s in self.layout.stations]
        seed = options.seed if options.seed is not None else int(time.time())
        self.planned = plan_files(options.files, names, seed=seed)
        self._supervisor = SupervisorProcess(self.layout.registry, self.root / "supervisor.out")
        self._supervisor.start()
        self._event(f"supervisor started (pid {self._supervisor.pid}) for {self.layout.registry}")

    def _play(self, deadline: float, live: Any) -> bool:
        """Start, drop, kill, drain; False if the deadline passed first."""
        assert self._supervisor is not None
        names = {s.name for s in self._layout().stations}
        while not self._all_running(names):
            if not self._tick(deadline, live):
                return False
        self._event(f"all {len(names)} station(s) running")
        self._phase = "dropping files"
        interval = min(0.25, self.options.drop_seconds / max(1, len(self.planned)))
        next_drop = time.monotonic()
        kill_after = len(self.planned) // 2 if self.options.kill else -1
        for planned in self.planned:
            while time.monotonic() < next_drop:
                if not self._tick(deadline, live, sleep=min(0.05, next_drop - time.monotonic())):
                    return False
            self._drop(planned)
            next_drop += interval
            if len(self.dropped) == kill_after:
                self._kill_due = True
        self._phase = "waiting for uploads"
        while not self._done():
            if not self._tick(deadline, live):
                return False
        self._phase = "done"
        self._redraw(live, force=True)
        return True

    def _tick(self, deadline: float, live: Any, sleep: float = 0.1) -> bool:
        assert self._supervisor is not None
        self._supervisor.check_alive()
        self._observe()
        if self._kill_due:
            self._kill_one()
        self._track_kills()
        self._redraw(live)
        if time.monotonic() >= deadline:
            self._event(f"deadline of {self.options.timeout:g} s reached")
            self._redraw(live, force=True)
            return False
        time.sleep(max(0.0, sleep))
        return True

    def _done(self) -> bool:
        if self._slow is not None and self._slow.is_alive():
            return False
        sns = {str(r.get("sn")) for r in self._observed.server_reports}
        complete = is_complete(self.dropped, len(self.planned), sns, self._observed.errored)
        restarted = all(k.restarted_pid is not None for k in self.kills)
        return complete and restarted and not self._kill_due

    # --- acting ------------------------------------------------------------------------

    def _drop(self, planned: PlannedFile) -> None:
        path = self._layout().station(planned.station).watch_dir / planned.name
        if planned.slow:
            self._slow = _SlowWriter(path, planned.content, self._stop_writing)
            self._slow.start()
            self._event(f"{planned.station}: writing {planned.name} slowly (~1 s)")
        else:
            path.write_text(planned.content, encoding="utf-8")
            if not planned.valid:
                self._event(f"{planned.station}: dropped {planned.name}, a deliberately bad file")
        self.dropped.append(planned)

    def _kill_one(self) -> None:
        """Kill the first running worker (station-1 unless it is restarting: then retry)."""
        target = next(
            (s for s in self._observed.statuses if s.pid is not None and s.state == "running"),
            None,
        )
        if target is None or target.pid is None:
            return  # none running right now; the next tick tries again
        self._kill_due = False
        if kill_process(target.pid):
            self.kills.append(Kill(target.name, target.pid, after_files=len(self.dropped)))
            self._kill_time = time.monotonic()
            self._event(f"{target.name}: killed worker pid {target.pid} (like a crash)")

    def _track_kills(self) -> None:
        by_name = {s.name: s for s in self._observed.statuses}
        for i, kill in enumerate(self.kills):
            status = by_name.get(kill.station)
            if kill.restarted_pid is not None or status is None:
                continue
            if status.pid not in (None, kill.pid) and status.state == "running":
                back = time.monotonic() - self._kill_time
                self.kills[i] = replace(kill, restarted_pid=status.pid, back_after_s=round(back, 1))
                self._event(
                    f"{kill.station}: supervisor restarted it as pid {status.pid} "
                    f"({back:.1f} s after the kill)"
                )

    # --- observing ----------------------------------------------------------------------

    def _observe(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_observe < POLL_INTERVAL:
            return
        self._last_observe = now
        layout = self._layout()
        statuses = list_instances(layout.registry)
        for status in statuses:
            self.tally.update(status.name, status.pid, status.snapshot)
        if self._supervisor is not None:
            self._supervisor.remember_children()
        self._observed = _Observed(statuses, self._server_reports(), read_errored(layout.stations))

    def _server_reports(self) -> list[dict[str, Any]]:
        assert self._http is not None
        try:
            response = self._http.get("/standin/reports")
            response.raise_for_status()
            reports = response.json()
        except (httpx.HTTPError, ValueError):
            return self._observed.server_reports  # try again at the next look
        return [r for r in reports if isinstance(r, dict)]

    def _formats(self) -> dict[str, list[str]]:
        return {s.name: [k.name for k in s.kinds] for s in self._layout().stations}

    def _summary(self, timed_out: bool, interrupted: bool) -> DemoSummary:
        observed = self._observed
        return summarize(
            self.planned,
            self.dropped,
            observed.server_reports,
            observed.errored,
            formats=self._formats() if self.layout else {},
            restarts={s.name: s.restarts for s in observed.statuses},
            kills=self.kills,
            timed_out=timed_out,
            interrupted=interrupted,
            elapsed_s=time.monotonic() - self._started,
            server_url=self._url,
        )

    # --- showing -----------------------------------------------------------------------

    def _event(self, text: str) -> None:
        self.events.append(f"{datetime.now():%H:%M:%S} {text}")

    def _live(self) -> Any:
        if self.console is None:
            return contextlib.nullcontext()
        from rich.live import Live

        return Live(console=self.console, refresh_per_second=4, transient=False)

    def _redraw(self, live: Any, *, force: bool = False) -> None:
        if self.console is None or self.layout is None:
            return
        now = time.monotonic()
        if not force and now - self._last_redraw < REDRAW_INTERVAL:
            return
        self._last_redraw = now
        observed = self._observed
        progress = Progress(
            dropped=len(self.dropped),
            planned=len(self.planned),
            accepted=len({str(r.get("sn")) for r in observed.server_reports}),
            expected=sum(1 for f in self.planned if f.valid),
            errored=len(observed.errored),
            elapsed_s=time.monotonic() - self._started,
            phase=self._phase,
        )
        in_error = Counter(e.station for e in observed.errored)
        live.update(
            render_view(
                observed.statuses, self.tally, self._formats(), in_error, progress, self.events
            )
        )

    # --- ending ------------------------------------------------------------------------

    def _layout(self) -> DemoLayout:
        if self.layout is None:
            raise FatalError("the demo folder was not set up")
        return self.layout

    def _shutdown(self) -> None:
        """Supervisor first (its workers drain gracefully), then the server, then the folder."""
        self._stop_writing.set()
        steps: list[Callable[[], Any]] = []
        if self._slow is not None:
            steps.append(lambda: self._slow.join(5.0) if self._slow else None)
        if self._supervisor is not None:
            stop_timeout = float(DEMO_SUPERVISOR["stop_timeout"]) + 5.0
            steps.append(lambda: self._supervisor.stop(stop_timeout) if self._supervisor else None)
        if self._http is not None:
            steps.append(self._http.close)
        if self._server is not None:
            steps.append(self._server.stop)
        for step in steps:
            try:
                step()
            except KeyboardInterrupt:
                continue  # a second Ctrl+C: the supervisor step already killed; go on
            except Exception as exc:  # noqa: BLE001 - keep cleaning up, report at the end
                self.cleanup_error = f"{type(exc).__name__}: {exc}"
        if self.root is not None and not self._keep:
            try:
                shutil.rmtree(self.root)
            except OSError as exc:
                self.cleanup_error = (
                    f"could not remove the demo folder {self.root} ({exc.strerror or exc}); "
                    "delete it by hand"
                )

    def _all_running(self, names: set[str]) -> bool:
        running = {
            s.name
            for s in self._observed.statuses
            if s.state == "running" and s.pid is not None and s.last_heartbeat_at is not None
        }
        return names <= running


def run_demo(options: DemoOptions, console: Console | None = None) -> tuple[DemoSummary, Demo]:
    """Run the demo; returns its summary and the finished run (events, cleanup problems)."""
    demo = Demo(options, console)
    return demo.run(), demo
