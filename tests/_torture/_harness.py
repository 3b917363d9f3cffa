"""One torture run: stations under a real supervisor, files streaming in, faults, drain, audit.

Used by ``bench/torture.py`` (minutes) and by ``tests/e2e/test_faults_*.py``
(seconds, one fault kind each). The run:

1. starts a private stand-in server and a real ``pywats-client supervise``
   with ``stations`` workers (one queue on a small file system when the
   disk-full fault is on);
2. for ``seconds``, drops result files (valid, slowly written, and with
   ``bad-input`` every kind of bad one) while up to three fault threads inject
   faults: one server episode at a time (down, 503, 429, 400, slow), one
   station episode at a time (wrong token, disk full) and instant faults
   (SIGKILL of a worker or of the supervisor, corrupt queue files);
3. ends every fault, waits until every station has settled, audits, requeues
   what the server rejected and waits for it to arrive;
4. stops the supervisor gracefully and audits again (reports, folders, temp
   files, tokens, file modes, orphan processes).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import stat
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pywats_client._fsutil import TEMP_SUFFIX, atomic_write_text
from pywats_client.standin import generate_token
from pywats_client.supervisor._testhooks import CLOCK_JUMPS_ENV, EMPTY_GRACE_ENV
from tests._standin import PrivateStandin
from tests._torture._audit import (
    RUN_TAG_ENV,
    AuditResult,
    Planted,
    StationLayout,
    audit,
    find_orphans,
)
from tests._torture._disk import SmallDisk
from tests._torture._faults import (
    ALL_KINDS,
    EPISODES,
    INSTANTS,
    Episode,
    Instant,
    parse_kinds,
)
from tests._torture._inputs import BAD_KINDS, Dropped, InputMaker
from tests.e2e._control import cli
from tests.e2e._supervisor import SupervisorRun, clean_env, registry
from tests.helpers import wait_until

__all__ = ["Settings", "Torture", "TortureResult", "run_checked"]

#: A small wall-clock step (s): reports queued during it may wait up to this long.
CLOCK_NUDGE = 15.0
SERVER_LANE = ("down", "503", "429", "400", "slow")
STATION_LANE = ("token", "disk-full")


@dataclass
class Settings:
    """What one run does. Times in seconds."""

    seconds: float = 20.0
    stations: int = 2
    faults: tuple[str, ...] = ALL_KINDS
    seed: int = 1
    rate: float = 4.0  # files per second over all stations
    bad_fraction: float = 0.15
    slow_fraction: float = 0.1
    request_timeout: float = 2.0
    max_file_size: int = 256 * 1024
    episode: tuple[float, float] = (3.0, 8.0)
    calm: tuple[float, float] = (0.5, 2.0)  # between two episodes of one lane
    instant_gap: tuple[float, float] = (2.0, 5.0)
    clock_jump: float = 3600.0  # the big jumps; small ones (CLOCK_NUDGE) come in between
    clock_every: tuple[float, float] = (4.0, 10.0)
    empty_grace: float = 2.0
    drain_timeout: float = 120.0
    root: Path | None = None  # work folder; a temp folder (removed if all went well) if None
    keep: bool = False
    log: Callable[[str], None] | None = None  # gets each timeline line


@dataclass
class TortureResult:
    settings: Settings
    audit: AuditResult
    requeued: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    disk: str = "off"
    disk_reason: str = ""
    server_stats: dict[str, Any] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    root: Path | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.audit.ok and not self.orphans

    @property
    def findings(self) -> list[str]:
        return [*self.audit.findings, *(f"orphan process: {o}" for o in self.orphans)]

    def summary(self) -> str:
        a, s = self.audit, self.settings
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        return (
            f"torture: {s.seconds / 60:.1f} min, {s.stations} stations, seed {s.seed}: "
            f"dropped {a.dropped} (valid {a.valid}), accepted {a.accepted}, "
            f"failed-then-requeued {self.requeued}, errored {a.errored}, "
            f"quarantined {a.quarantined}, lost {a.lost}, duplicated {a.duplicated}, "
            f"stuck {a.stuck}, resubmitted {a.resubmitted}, kills "
            f"{self.kills['kill-worker']} workers/{self.kills['kill-supervisor']} supervisors, "
            f"faults injected [{faults}], disk-full via {self.disk}, "
            f"orphans {len(self.orphans)}, audit {'ok' if self.ok else 'FAILED'}"
            f" ({len(self.findings)} findings), {self.elapsed:.0f} s"
        )


class Torture:
    """One run; :meth:`run` does it all and always cleans up its processes and mounts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kinds = settings.faults
        self.rng = random.Random(settings.seed)
        self.tag = f"torture-{uuid.uuid4().hex[:12]}"
        self.token = generate_token()
        self.wrong_token = generate_token()
        self.names = [f"st{i + 1}" for i in range(settings.stations)]
        self._own_root = settings.root is None
        self.root = (
            Path(tempfile.mkdtemp(prefix="pywats-torture-"))
            if settings.root is None
            else settings.root
        )
        self.root.mkdir(parents=True, exist_ok=True)
        self.dropped: list[Dropped] = []
        self.planted: list[Planted] = []
        self.kills: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.errors: list[str] = []
        self.disk: SmallDisk | None = None
        self.standin = PrivateStandin(self.root / "standin", self.token)
        self._runs: list[SupervisorRun] = []
        self._sup_lock = threading.Lock()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._timeline = self.root / "torture-timeline.log"
        self._t0 = time.monotonic()

    # --- layout ------------------------------------------------------------------------

    def on_small_disk(self, name: str) -> bool:
        """Whether this station's queue lives on the small file system (disk-full fault)."""
        return self.disk is not None and self.disk.available and name == self.names[0]

    def layout(self, name: str) -> StationLayout:
        folder = self.root / name
        queue = folder / "qfs" / "queue" if self.on_small_disk(name) else folder / "queue"
        return StationLayout(name, folder / "config.json", folder / "in", queue)

    @property
    def stations(self) -> list[StationLayout]:
        return [self.layout(n) for n in self.names]

    def write_config(self, name: str, *, token: str | None = None) -> None:
        """The station's config.json, owner-only as the product writes its own."""
        layout = self.layout(name)
        settings = self.settings
        config = {
            "instance_name": name,
            "service_address": self.standin.url,
            "api_token": self.token if token is None else token,
            "watch_paths": ["in"],
            "queue_path": str(layout.queue.relative_to(layout.config.parent)),
            "converter_path": "converters",
            "ready_after": 1.0,  # 6x the longest pause of a slowly written file
            "rescan_interval": 2.0,
            "max_file_size": settings.max_file_size,
            "request_timeout": settings.request_timeout,
            "retry": {"initial_delay": 0.2, "max_delay": 2.0},
            "ping_interval": 2.0,
            "converter_timeout": 30.0,
            # the first station uploads through its helper process all the time, so
            # every fault also lands on a helper (the others start one under load)
            "upload_helper": "always" if name == self.names[0] else "auto",
        }
        layout.config.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(layout.config, json.dumps(config, indent=1))

    def planted_file(self, station: str, name: str, kind: str) -> None:
        with self._lock:
            self.planted.append(Planted(station, name, kind))

    @property
    def supervisor(self) -> SupervisorRun:
        return self._runs[-1]

    def note(self, line: str) -> None:
        text = f"{time.monotonic() - self._t0:8.2f} {line}"
        with self._lock, open(self._timeline, "a", encoding="utf-8") as out:
            out.write(text + "\n")
        if self.settings.log is not None:
            self.settings.log(text)

    # --- the run ----------------------------------------------------------------------

    def run(self) -> TortureResult:
        started = time.monotonic()
        result: TortureResult | None = None
        try:
            self._setup()
            self._stream()
            result = self._finish()
            return result
        finally:
            self._stop.set()
            self._teardown()
            if result is not None:
                result.elapsed = time.monotonic() - started
                if result.ok and self._own_root and not self.settings.keep:
                    shutil.rmtree(self.root, ignore_errors=True)
                else:
                    result.root = self.root

    def _setup(self) -> None:
        previous = os.environ.get(RUN_TAG_ENV)
        os.environ[RUN_TAG_ENV] = self.tag  # the stand-in carries the tag too
        try:
            self.standin.start()
        finally:
            if previous is None:
                os.environ.pop(RUN_TAG_ENV, None)
            else:
                os.environ[RUN_TAG_ENV] = previous
        if "disk-full" in self.kinds:
            self.disk = SmallDisk(self.root / self.names[0] / "qfs").mount()
            self.note(f"disk-full: {self.disk.mechanism} {self.disk.reason}".rstrip())
            if not self.disk.available:
                self.kinds = tuple(k for k in self.kinds if k != "disk-full")
        for name in self.names:
            self.write_config(name)
            self.layout(name).watch.mkdir(parents=True, exist_ok=True)
        reg = registry(self.root, self.names)
        reg.chmod(stat.S_IRUSR | stat.S_IWUSR)
        self._env = {RUN_TAG_ENV: self.tag, EMPTY_GRACE_ENV: str(self.settings.empty_grace)}
        if "clock" in self.kinds:
            self._env[CLOCK_JUMPS_ENV] = self._clock_schedule()
        self._start_supervisor()
        self.supervisor.wait_running(*self.names, timeout=90)
        self.note(f"running: {len(self.names)} stations, faults {','.join(self.kinds)}")

    def _clock_schedule(self) -> str:
        """Wall-clock steps each worker replays from its start: +-jump, a nudge, or true time."""
        jump, (low, high) = self.settings.clock_jump, self.settings.clock_every
        steps, at = [], 0.0
        while at < self.settings.seconds:
            at += self.rng.uniform(low, high)
            offset = self.rng.choice((jump, -jump, CLOCK_NUDGE, 0.0))
            steps.append(f"*:{at:.1f}:{offset:+.1f}")
        steps.append(f"*:{at + 1:.1f}:0")
        self.faults["clock"] = len(steps)
        return ",".join(steps)

    def _start_supervisor(self) -> None:
        reg = self.root / "instances.toml"
        self._runs.append(SupervisorRun(reg, clean_env(**self._env), []))

    def restart_supervisor(self, *, kill: bool) -> None:
        """SIGKILL (or stop) the supervisor and start a new one, as a service manager would."""
        with self._sup_lock:
            old = self.supervisor
            if kill:
                old.kill()
            else:
                old.terminate(60)
            self._start_supervisor()

    # --- streaming with faults ---------------------------------------------------------

    def _stream(self) -> None:
        threads = [threading.Thread(target=self._guard(self._drop_loop), name="dropper")]
        lanes = [
            [k for k in SERVER_LANE if k in self.kinds],
            [k for k in STATION_LANE if k in self.kinds],
        ]
        for kinds in lanes:
            if kinds:
                threads.append(
                    threading.Thread(target=self._guard(self._episode_loop, kinds), name="lane")
                )
        instants = [k for k in INSTANTS if k in self.kinds]
        if instants:
            threads.append(
                threading.Thread(target=self._guard(self._instant_loop, instants), name="instants")
            )
        for thread in threads:
            thread.start()
        self._stop.wait(self.settings.seconds)
        self._stop.set()
        for thread in threads:
            thread.join(120)
        if self.errors:
            raise RuntimeError("torture harness failed: " + "; ".join(self.errors))

    def _guard(self, loop: Callable[..., None], *args: Any) -> Callable[[], None]:
        def body() -> None:
            try:
                loop(*args)
            except Exception as exc:
                self.errors.append(f"{loop.__name__}: {type(exc).__name__}: {exc}")
                self.note(f"HARNESS ERROR in {loop.__name__}: {exc!r}")
                self._stop.set()

        return body

    def _drop_loop(self) -> None:
        rng = random.Random(self.settings.seed + 1)
        maker = InputMaker(rng, self.tag[-6:].upper(), self.settings.max_file_size)
        bad = "bad-input" in self.kinds
        interval = 1.0 / self.settings.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            name = rng.choice(self.names)
            folder = self.layout(name).watch
            roll = rng.random()
            if bad and roll < self.settings.bad_fraction:
                kind = BAD_KINDS[self.faults["bad-input"] % len(BAD_KINDS)]  # each kind in turn
                file = maker.drop_bad(folder, name, kind)
                self.faults["bad-input"] += 1
            else:
                slow = bad and roll < self.settings.bad_fraction + self.settings.slow_fraction
                file = maker.drop_valid(folder, name, slow=slow)
            with self._lock:
                self.dropped.append(file)
            next_at += interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _episode_loop(self, kinds: Sequence[str]) -> None:
        rng = random.Random(f"{self.settings.seed}-{kinds[0]}")
        while not self._stop.is_set():
            episode: Episode = EPISODES[rng.choice(kinds)]()
            episode.start(self)
            self.faults[episode.kind] += 1
            self.note(f"{episode.kind} begins {episode.detail}".rstrip())
            try:
                self._stop.wait(rng.uniform(*self.settings.episode))
            finally:
                episode.stop(self)
                self.note(f"{episode.kind} ends")
            self._stop.wait(rng.uniform(*self.settings.calm))

    def _instant_loop(self, kinds: Sequence[str]) -> None:
        rng = random.Random(f"{self.settings.seed}-instants")
        while not self._stop.wait(rng.uniform(*self.settings.instant_gap)):
            fault: Instant = INSTANTS[rng.choice(kinds)]()
            if fault.fire(self):
                self.faults[fault.kind] += 1
                if fault.kind.startswith("kill-"):
                    self.kills[fault.kind] += 1
                self.note(f"{fault.kind}")

    # --- settling, requeue, audit ----------------------------------------------------------

    def _waiting_sources(self) -> list[Path]:
        return [
            p for s in self.stations if s.watch.is_dir() for p in s.watch.iterdir() if p.is_file()
        ]

    def _pending(self) -> list[Path]:
        return [
            p
            for s in self.stations
            for p in _files(s.queue / "pending")
            if not p.name.endswith(TEMP_SUFFIX)
        ]

    def _failed_ids(self) -> set[str]:
        ids = set()
        for station in self.stations:
            for path in _files(station.queue / "failed"):
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    ids.add(str(json.loads(path.read_bytes())["envelope"]["id"]).lower())
        return ids

    def _settled(self) -> str | None:
        """None when nothing is left to happen; else what is still going on."""
        waiting = self._waiting_sources()
        if waiting:
            return f"{len(waiting)} source file(s) still in watch folders, e.g. {waiting[0]}"
        pending = self._pending()
        if pending:
            return f"{len(pending)} report(s) pending, e.g. {pending[0]}"
        on_server = {str(r["id"]).lower() for r in self.standin.reports()}
        known = on_server | self._failed_ids()
        missing = [f for f in self.dropped if f.valid and f.report_id not in known]
        if missing:
            return f"{len(missing)} report(s) neither on the server nor failed, e.g. {missing[0]}"
        return None

    def _wait_settled(self, what: str) -> None:
        last: list[str | None] = [None]

        def done() -> bool:
            last[0] = self._settled()
            return last[0] is None

        try:
            wait_until(done, self.settings.drain_timeout, 0.5, message=what)
            self.note(f"settled: {what}")
        except AssertionError:
            self.note(f"NOT settled after {self.settings.drain_timeout} s ({what}): {last[0]}")

    def _finish(self) -> TortureResult:
        self.note(f"streaming over: {len(self.dropped)} files dropped; draining")
        self._ensure_supervisor()
        self._wait_settled("drain")
        before = self._audit()
        requeued = 0
        for station in self.stations:
            if _files(station.queue / "failed"):
                done = cli("queue", "requeue", "--config", str(station.config), "--all-failed")
                if done.returncode != 0:
                    self.errors.append(f"requeue {station.name}: {done.stdout}{done.stderr}")
        if before.failed_ids:
            self._wait_settled("requeued reports")
        self.note("stopping the supervisor")
        code = self.supervisor.terminate(90)
        reports = self.standin.reports()
        server_stats = self.standin.stats()
        self.standin.stop()
        orphans = self._wait_orphans()
        final = self._audit(reports)
        requeued = len(before.failed_ids - final.failed_ids)
        for finding in before.findings:
            if ("both accepted" in finding or "without a server rejection" in finding) and (
                finding not in final.findings
            ):
                final.add(finding)
        if code != 0:
            final.add(f"the supervisor exited {code} on SIGTERM (expected 0)")
        for error in self.errors:
            final.add(f"harness: {error}")
        return TortureResult(
            self.settings,
            final,
            requeued=requeued,
            kills=self.kills,
            faults=self.faults,
            disk=self.disk.mechanism if self.disk is not None else "off",
            disk_reason=self.disk.reason if self.disk is not None else "",
            server_stats=server_stats,
            orphans=orphans,
        )

    def _ensure_supervisor(self) -> None:
        """The last supervisor may have been killed just before the end: restart it."""
        if self.supervisor.proc.poll() is not None:
            self._start_supervisor()
        with contextlib.suppress(AssertionError):
            self.supervisor.wait_running(*self.names, timeout=60)

    def _wait_orphans(self) -> list[str]:
        found: list[str] = []

        def none_left() -> bool:
            nonlocal found
            found = find_orphans(self.tag)
            return not found

        with contextlib.suppress(AssertionError):
            wait_until(none_left, 20, 0.2, message="run processes to exit")
        return found

    def _audit(self, reports: list[dict[str, Any]] | None = None) -> AuditResult:
        return audit(
            self.stations,
            self.dropped,
            self.standin.reports() if reports is None else reports,
            planted=self.planted,
            secrets=(self.token, self.wrong_token),
            scan_root=self.root,
            private_roots=(self.root / ".pywats", self.root / "logs"),
        )

    def _teardown(self) -> None:
        for run in self._runs:
            with contextlib.suppress(Exception):
                run.cleanup()
        with contextlib.suppress(Exception):
            self.standin.stop()
        self.standin.close()
        for pid_line in find_orphans(self.tag):
            with contextlib.suppress(Exception):
                os.kill(int(pid_line.split()[0]), 9)
        if self.disk is not None:
            self.disk.unmount()


def _files(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_file()]
    except OSError:
        return []


def run_checked(root: Path, faults: str, **overrides: Any) -> TortureResult:
    """A short run for a CI test: fails the test with the summary and findings unless ok."""
    # drain_timeout is a deadline, paid only when a run fails to settle: generous,
    # for a busy 2-core machine
    defaults: dict[str, Any] = {"seconds": 12.0, "stations": 2, "drain_timeout": 90.0}
    settings = Settings(faults=parse_kinds(faults), root=root, **{**defaults, **overrides})
    result = Torture(settings).run()
    assert result.ok, "\n".join([result.summary(), *result.findings, f"work folder: {root}"])
    return result
