"""What machine the figures come from: cores, memory, the disk under test, Python, OS, load."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import threading
from pathlib import Path
from typing import Any

import psutil

__all__ = ["ForeignCpu", "describe", "load_average", "summary_line"]


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _disk(folder: Path) -> dict[str, Any]:
    """The file system that holds ``folder``: device, type, size."""
    folder = folder.resolve()
    best: Any = None
    for part in psutil.disk_partitions(all=True):
        mount = Path(part.mountpoint)
        if (folder == mount or mount in folder.parents) and (
            best is None or len(part.mountpoint) > len(best.mountpoint)
        ):
            best = part
    usage = psutil.disk_usage(str(folder))
    return {
        "path": str(folder),
        "device": best.device if best else "?",
        "fstype": best.fstype if best else "?",
        "mountpoint": best.mountpoint if best else "?",
        "size_gib": round(usage.total / 2**30, 1),
    }


def describe(bench_dir: Path) -> dict[str, Any]:
    """Everything the report's header needs, read from the machine itself."""
    memory = psutil.virtual_memory()
    return {
        "cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "cpu": platform.processor() or platform.machine(),
        "ram_gib": round(memory.total / 2**30, 1),
        "disk": _disk(bench_dir),
        "python": sys.version.split()[0],
        "os": platform.platform(),
        "load_average": load_average(),
    }


def summary_line(info: dict[str, Any]) -> str:
    disk = info["disk"]
    load = info["load_average"]
    return (
        f"{info['cores']} CPUs, {info['ram_gib']} GiB RAM; bench folder {disk['path']} on "
        f"{disk['device']} ({disk['fstype']}, {disk['size_gib']} GiB); Python {info['python']}; "
        f"{info['os']}; load average {'?' if load is None else f'{load:.2f}'}"
    )


class ForeignCpu:
    """CPU used by other users' processes while the bench runs (a busy-machine warning).

    A thread samples every process once a second and adds up the CPU time
    that processes outside this process's tree (and outside the kernel's own
    threads) used between two samples. A test suite another engineer runs
    meanwhile shows up here; a process that lives less than a second may be
    missed.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self._me = psutil.Process()
        self._interval = interval
        self._last: dict[int, float] = {}
        self._lock = threading.Lock()
        self.total = 0.0  # CPU seconds of foreign processes so far
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="foreign-cpu", daemon=True)

    def start(self) -> ForeignCpu:
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        ours = {self._me.pid} | {c.pid for c in self._me.children(recursive=True)}
        now: dict[int, float] = {}
        for proc in psutil.process_iter(["ppid"]):
            if proc.pid in ours or proc.pid <= 2 or proc.info["ppid"] == 2:
                continue  # ours, or a kernel thread
            with contextlib.suppress(psutil.Error):
                now[proc.pid] = float(sum(proc.cpu_times()[:2]))
        with self._lock:
            self.total += sum(
                cpu - self._last[pid] for pid, cpu in now.items() if pid in self._last
            )
            self._last = now

    def seconds(self) -> float:
        with self._lock:
            return self.total
