"""Waiting on more pipes than one Windows wait takes: chunks, nothing missed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any

import pytest

from pywats_client.supervisor import _wait
from pywats_client.supervisor._wait import wait_any


@pytest.fixture
def pipes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Connection, Connection]]]:
    """Seven pipes, and a wait that takes only two objects at a time (as Windows, 63)."""
    monkeypatch.setattr(_wait, "CHUNK", 2)
    monkeypatch.setattr(_wait, "SLICE", 0.02)
    made = [Pipe(duplex=False) for _ in range(7)]
    yield made
    for reader, writer in made:
        reader.close()
        writer.close()


def _readers(pipes: list[tuple[Connection, Connection]]) -> list[Any]:
    return [reader for reader, _ in pipes]


def test_nothing_ready_waits_out_the_timeout(pipes: list[tuple[Connection, Connection]]) -> None:
    began = time.monotonic()
    assert wait_any(_readers(pipes), 0.2) == []
    assert time.monotonic() - began >= 0.2


def test_every_ready_object_in_every_chunk_is_returned(
    pipes: list[tuple[Connection, Connection]],
) -> None:
    for index in (0, 3, 6):
        pipes[index][1].send("beat")
    assert set(wait_any(_readers(pipes), 5)) == {pipes[i][0] for i in (0, 3, 6)}


def test_a_message_in_the_last_chunk_ends_the_wait(
    pipes: list[tuple[Connection, Connection]],
) -> None:
    last_writer = pipes[-1][1]
    sender = threading.Timer(0.1, last_writer.send, args=("exited",))
    sender.start()
    began = time.monotonic()
    try:
        assert wait_any(_readers(pipes), 30) == [pipes[-1][0]]
    finally:
        sender.join()
    assert time.monotonic() - began < 10  # seen within slices, not at the 30 s timeout


def test_a_closed_writer_counts_as_ready(pipes: list[tuple[Connection, Connection]]) -> None:
    pipes[5][1].close()  # a worker that died: its end of the pipe is gone
    assert wait_any(_readers(pipes), 5) == [pipes[5][0]]


def test_within_the_limit_it_is_one_plain_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def plain_wait(objects: list[Any], timeout: float) -> list[Any]:
        calls.append(len(objects))
        return []

    monkeypatch.setattr(_wait, "CHUNK", 63)
    monkeypatch.setattr(_wait, "wait", plain_wait)
    assert wait_any([object()] * 63, 0.01) == []
    assert calls == [63]
