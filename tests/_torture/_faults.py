"""The fault injectors of the torture suite, one class per fault kind.

An *episode* fault has a duration (``start``, then ``stop`` restores the
world); an *instant* fault happens once (``fire``). Bad input files and clock
jumps are not scheduled here: the dropper mixes bad files into the stream, and
clock jumps are a worker test hook set when the supervisor starts.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pywats_client._fsutil import atomic_write_bytes

if TYPE_CHECKING:
    from tests._torture._harness import Torture

__all__ = [
    "ALL_KINDS",
    "EPISODES",
    "INSTANTS",
    "REJECT_MESSAGE",
    "Episode",
    "Instant",
    "parse_kinds",
]

#: The reason the stand-in gives for the reports it rejects (the audit looks for it).
REJECT_MESSAGE = "torture: the server rejects this report (injected 400)"

ALL_KINDS = (
    "kill-worker",
    "kill-supervisor",
    "down",
    "503",
    "429",
    "400",
    "slow",
    "token",
    "disk-full",
    "corrupt-queue",
    "bad-input",
    "clock",
)
ALIASES = {"kill": ("kill-worker", "kill-supervisor"), "all": ALL_KINDS}


def parse_kinds(text: str) -> tuple[str, ...]:
    """``all``, ``none`` or a comma list of kinds/aliases -> kinds in canonical order."""
    chosen: set[str] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part or part == "none":
            continue
        if part in ALIASES:
            chosen.update(ALIASES[part])
        elif part in ALL_KINDS:
            chosen.add(part)
        else:
            raise ValueError(
                f"unknown fault {part!r}; known: all, none, kill, {', '.join(ALL_KINDS)}"
            )
    return tuple(k for k in ALL_KINDS if k in chosen)


@dataclass
class Episode:
    """A fault that lasts a while."""

    kind: ClassVar[str] = ""
    detail: str = field(default="", init=False)

    def start(self, run: Torture) -> None:
        raise NotImplementedError

    def stop(self, run: Torture) -> None:
        raise NotImplementedError


@dataclass
class Instant:
    """A fault that happens at one moment."""

    kind: ClassVar[str] = ""

    def fire(self, run: Torture) -> bool:
        """Inject it; False if there was nothing to hit right now."""
        raise NotImplementedError


# --- server ---------------------------------------------------------------------------


@dataclass
class ServerDown(Episode):
    """The server goes away: killed outright (refused connections), or hanging up on requests."""

    kind: ClassVar[str] = "down"
    killed: bool = False

    def start(self, run: Torture) -> None:
        self.killed = run.rng.random() < 0.5
        if self.killed:
            run.standin.kill()
            self.detail = "process killed"
        else:
            run.standin.set_faults(down=True)
            self.detail = "connections dropped"

    def stop(self, run: Torture) -> None:
        if self.killed:
            run.standin.start()
        else:
            run.standin.clear_faults()


@dataclass
class ServerPlan(Episode):
    """A fault plan on the stand-in (``POST /standin/faults``) for the episode."""

    def plan(self, run: Torture) -> dict[str, object]:
        raise NotImplementedError

    def start(self, run: Torture) -> None:
        run.standin.set_faults(**self.plan(run), seed=run.rng.randrange(2**32))

    def stop(self, run: Torture) -> None:
        run.standin.clear_faults()


class Flaky503(ServerPlan):
    kind: ClassVar[str] = "503"

    def plan(self, run: Torture) -> dict[str, object]:
        return {"status": 503, "rate": 0.3}


class TooMany429(ServerPlan):
    kind: ClassVar[str] = "429"

    def plan(self, run: Torture) -> dict[str, object]:
        return {"status": 429, "rate": 0.5, "retry_after": 1, "paths": ["/api/Report/"]}


class Reject400(ServerPlan):
    """Some reports are rejected; a real server would accept a resubmitted known one."""

    kind: ClassVar[str] = "400"

    def plan(self, run: Torture) -> dict[str, object]:
        return {
            "status": 400,
            "rate": 0.2,
            "new_only": True,
            "message": REJECT_MESSAGE,
            "paths": ["/api/Report/"],
        }


class Slow(ServerPlan):
    """Report uploads answered after the client's request_timeout (the server still commits)."""

    kind: ClassVar[str] = "slow"

    def plan(self, run: Torture) -> dict[str, object]:
        return {
            "latency_ms": (run.settings.request_timeout + 1.5) * 1000,
            "paths": ["/api/Report/"],
        }


# --- stations ---------------------------------------------------------------------------


@dataclass
class WrongToken(Episode):
    """An operator puts a wrong token into one station's config, then fixes it."""

    kind: ClassVar[str] = "token"
    station: str = ""

    def start(self, run: Torture) -> None:
        self.station = run.rng.choice(run.names)
        run.write_config(self.station, token=run.wrong_token)
        self.detail = self.station

    def stop(self, run: Torture) -> None:
        run.write_config(self.station)


@dataclass
class DiskFull(Episode):
    """The file system holding one station's queue runs full, then space comes back."""

    kind: ClassVar[str] = "disk-full"

    def start(self, run: Torture) -> None:
        assert run.disk is not None and run.disk.available
        written = run.disk.fill()
        self.detail = f"{run.disk.mechanism}, filler {written // 1024} KiB"

    def stop(self, run: Torture) -> None:
        assert run.disk is not None
        run.disk.free()


@dataclass
class KillWorker(Instant):
    kind: ClassVar[str] = "kill-worker"

    def fire(self, run: Torture) -> bool:
        pids = [r["pid"] for r in run.supervisor.instances().values() if r.get("pid")]
        if not pids:
            return False
        pid = run.rng.choice(pids)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True


@dataclass
class KillSupervisor(Instant):
    """SIGKILL the supervisor; a service manager starts a new one at once."""

    kind: ClassVar[str] = "kill-supervisor"

    def fire(self, run: Torture) -> bool:
        run.restart_supervisor(kill=True)
        return True


@dataclass
class CorruptQueue(Instant):
    """Plant corrupt and truncated files among a queue's pending reports."""

    kind: ClassVar[str] = "corrupt-queue"
    kinds: ClassVar[tuple[str, ...]] = ("garbage", "truncated", "not-a-report", "bad-name")

    def fire(self, run: Torture) -> bool:
        station = run.rng.choice(run.names)
        pending = run.layout(station).queue / "pending"
        if not pending.is_dir():
            return False
        kind = run.rng.choice(self.kinds)
        due = time.time_ns()
        name = f"{due:020d}-{uuid.uuid4()}.json"
        if kind == "garbage":
            data = run.rng.randbytes(run.rng.randrange(1, 2048))
        elif kind == "truncated":
            data = self._truncated(run.rng, pending) or b'{"envelope": {"id": "'
        elif kind == "not-a-report":
            data = json.dumps({"envelope": {"id": 42}, "report": "nope"}).encode()
        else:
            name = f"torture-junk-{uuid.uuid4().hex[:8]}.json"
            data = b"{}"
        if not _plant(pending, name, data):
            return False
        run.planted_file(station, name, kind)
        return True

    @staticmethod
    def _truncated(rng: random.Random, pending: Path) -> bytes | None:
        """The first part of a real pending report (read, never changed)."""
        try:
            with os.scandir(pending) as entries:
                names = [e.name for e in entries if e.name.endswith(".json")][:50]
            if not names:
                return None
            data = (pending / rng.choice(names)).read_bytes()
        except OSError:
            return None
        return data[: max(1, len(data) // 2)]


def _plant(folder: Path, name: str, data: bytes) -> bool:
    """Put ``data`` in place in one rename (owner-only, like every queue file)."""
    try:
        atomic_write_bytes(folder / name, data, sync_dir=False)
    except OSError:  # the disk-full fault may be on: nothing planted
        return False
    return True


EPISODES: dict[str, type[Episode]] = {
    cls.kind: cls
    for cls in (ServerDown, Flaky503, TooMany429, Reject400, Slow, WrongToken, DiskFull)
}
INSTANTS: dict[str, type[Instant]] = {
    cls.kind: cls for cls in (KillWorker, KillSupervisor, CorruptQueue)
}
