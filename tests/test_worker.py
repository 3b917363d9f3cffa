"""The worker's heartbeat sampler: a station's memory and CPU include its upload helper."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from pywats_client.supervisor.worker import _ResourceSampler
from tests.helpers import wait_until


@pytest.fixture
def busy_child() -> Iterator[psutil.Process]:
    """A child spinning one core, as an uploading helper might."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield psutil.Process(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def test_the_helper_counts_in_memory_at_once_and_in_cpu_from_the_next_beat(
    busy_child: psutil.Process,
) -> None:
    sampler = _ResourceSampler()
    own = psutil.Process().memory_info().rss
    rss, cpu = sampler.sample(busy_child.pid)
    assert rss > own + 0.5 * busy_child.memory_info().rss
    assert cpu < 90  # its first reading would span microseconds: not counted
    # the sampler's own process idles; the child spins: its share shows from now on
    wait_until(lambda: sampler.sample(busy_child.pid)[1] > 50, 10, 0.2, "the child's CPU")


def test_no_helper_or_one_that_ended_counts_nothing(busy_child: psutil.Process) -> None:
    sampler = _ResourceSampler()
    sampler.sample(busy_child.pid)
    busy_child.kill()
    busy_child.wait(10)
    own = psutil.Process().memory_info().rss
    rss, _ = sampler.sample(busy_child.pid)  # gone between beats
    assert rss < own + 20 * 2**20
    rss, _ = sampler.sample(None)
    assert rss < own + 20 * 2**20
