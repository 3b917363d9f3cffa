"""The upload helper process: outcomes cross it unchanged; its death, hang or failure to
start loses and doubles nothing; "auto" runs it only while the station is busy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from pywats_client._pidlock import exclusive_lock
from pywats_client.errors import (
    PyWATSClientError,
    ReportRejectedError,
    ServerUnavailableError,
    UnauthorizedError,
)
from pywats_client.services import QueueService
from pywats_client.services import _upload_helper as helper_module
from pywats_client.services import queue as queue_service_module
from pywats_client.services._upload_helper import UploadHelper, _error_of, _outcome_of
from tests._standin import StandinClient
from tests.e2e._queue_common import load, new_reports, report_id, running_uploader, write_config
from tests.helpers import async_wait_until

# --- the outcome of an upload, across the process boundary -----------------------------


class _Raising:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def submit(self, body: bytes) -> None:
        if self.error is not None:
            raise self.error


def _across(error: Exception | None) -> PyWATSClientError | None:
    """What the worker raises for what the helper's client raised (through JSON)."""
    answer = _outcome_of(_Raising(error), b"{}")
    return _error_of(json.loads(json.dumps(answer)))


@pytest.mark.parametrize(
    "error",
    [
        UnauthorizedError("the server refused the token (401)"),
        ServerUnavailableError("server busy (503)", status_code=503, retry_after=7.5),
        ServerUnavailableError("connection refused by wats.example:443"),
        ReportRejectedError("the server rejected the report (400): pn missing"),
        ReportRejectedError("no such route (404)", status_code=404),
    ],
    ids=repr,
)
def test_each_outcome_crosses_the_process_as_the_client_raised_it(error: Exception) -> None:
    back = _across(error)
    assert type(back) is type(error)
    assert str(back) == str(error)
    for attribute in ("status_code", "retry_after"):
        assert getattr(back, attribute, None) == getattr(error, attribute, None)


def test_an_accepted_upload_crosses_as_no_error_and_a_bug_as_a_retry() -> None:
    assert _across(None) is None
    bug = _across(KeyError("Location"))
    assert isinstance(bug, ServerUnavailableError)
    assert bug.status_code is None
    assert "KeyError" in str(bug) and "Location" in str(bug)


# --- a real helper process, a real queue, the stand-in server ----------------------------

#: How the worker's warning names a helper killed by the test.
KILLED = "exit code -9" if sys.platform != "win32" else "exit code"


@pytest.fixture(autouse=True)
def _own_slots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The "auto" helpers' slots of this test alone (not the PC's)."""
    slots = tmp_path / "slots"
    monkeypatch.setattr(helper_module, "SLOT_DIR", slots)
    return slots


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


def _helper(queue: QueueService) -> UploadHelper:
    helper = queue._helper
    assert helper is not None
    return helper


def _reaped(pid: int) -> bool:
    """Gone and joined: the test process is the helper's parent, so no zombie either."""
    return not psutil.pid_exists(pid)


def _helpers_alive() -> list[int]:
    """This process's children that are upload helpers (spawned, not a resource tracker)."""
    found = []
    for child in psutil.Process().children():
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "spawn_main" in cmdline and "resource_tracker" not in cmdline:
            found.append(child.pid)
    return found


async def _queue_reports(queue: QueueService, numbers: range) -> None:
    await asyncio.to_thread(queue.store.enqueue, new_reports(numbers))
    queue.wake()


async def _drained(queue: QueueService, timeout: float = 60) -> None:
    async def empty() -> bool:
        return (await queue.get_status())["pending"] == 0

    await async_wait_until(empty, timeout, message="queue drained")


def _on_server_once_each(standin: StandinClient, numbers: range) -> list[dict[str, Any]]:
    stored = standin.wait_for_reports(len(numbers))
    ids = [r["id"] for r in stored]
    assert len(ids) == len(set(ids)) == len(numbers)
    assert set(ids) == {report_id(n) for n in numbers}
    return stored


def _messages(caplog: Any, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def _config(tmp_path: Path, standin: StandinClient, **settings: Any) -> Any:
    return load(write_config(tmp_path, standin.url, standin.token, **settings))


@contextlib.asynccontextmanager
async def _helper_running(config: Any) -> AsyncIterator[tuple[QueueService, UploadHelper]]:
    """An uploader wired as the worker wires it, once its upload helper runs."""
    async with running_uploader(config) as (queue, _):
        helper = _helper(queue)
        await async_wait_until(lambda: helper.usable, 60, message="helper running")
        yield queue, helper


def test_reports_go_through_the_helper_and_it_ends_with_the_uploader(
    standin: StandinClient, tmp_path: Path, caplog: Any
) -> None:
    config = _config(tmp_path, standin, upload_helper="always")

    async def scenario() -> int:
        async with _helper_running(config) as (queue, helper):
            pid = helper.pid
            assert pid is not None and pid != os.getpid()
            await _queue_reports(queue, range(200))
            await _drained(queue)
            assert helper.answered == 200  # each upload went through the helper
            assert queue.uploaded == 200
        assert helper.pid is None
        return pid

    pid = _run(scenario())
    assert _reaped(pid)
    assert not _messages(caplog, "killed")  # it ended by itself when its socket closed
    stored = _on_server_once_each(standin, range(200))
    assert all(r["times_received"] == 1 for r in stored)


def test_the_token_is_neither_on_the_helpers_command_line_nor_in_its_environment(
    standin: StandinClient, tmp_path: Path
) -> None:
    config = _config(tmp_path, standin, upload_helper="always")

    async def scenario() -> None:
        async with _helper_running(config) as (_queue, helper):
            assert helper.pid is not None
            process = psutil.Process(helper.pid)
            assert standin.token not in " ".join(process.cmdline())
            assert not [k for k, v in process.environ().items() if standin.token in v]
            assert standin.token not in repr(helper)

    _run(scenario())


def test_a_helper_killed_mid_upload_loses_and_doubles_nothing(
    standin: StandinClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr(helper_module, "RESTART_HOLD", 0.2)
    caplog.set_level(logging.INFO, logger="pywats_client.upload")
    standin.set_faults(latency_ms=20)  # uploads in flight when the kill lands
    config = _config(tmp_path, standin, upload_helper="always")
    rng = random.Random(20261127)
    per_kill = 150
    count = 3 * per_kill

    async def scenario() -> list[int]:
        killed: list[int] = []
        async with running_uploader(config) as (queue, _):
            helper = _helper(queue)
            for round_ in range(3):
                await async_wait_until(
                    lambda: helper.usable and helper.pid not in killed, 60, message="a new helper"
                )
                # queued only now: while no helper runs, the worker uploads them itself
                await _queue_reports(queue, range(round_ * per_kill, (round_ + 1) * per_kill))
                enough = helper.answered + rng.randint(5, 40)
                await async_wait_until(
                    lambda n=enough: helper.answered >= n, 60, message="uploads through the helper"
                )
                assert helper.pid is not None
                killed.append(helper.pid)
                psutil.Process(helper.pid).kill()
            await _drained(queue, timeout=30)
            # a report the dead helper owed went out from the worker, as the same upload
            assert queue.uploaded == count and queue.retried == 0
        return killed

    killed = _run(scenario())
    assert all(_reaped(pid) for pid in killed)
    _on_server_once_each(standin, range(count))
    warnings = _messages(caplog, "upload helper of")
    assert len(warnings) == 3
    assert all(KILLED in w and "nothing is lost" in w for w in warnings)
    assert not _messages(caplog, "unexpected error")


def test_after_a_helper_died_the_next_one_waits_out_the_hold(
    standin: StandinClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr(helper_module, "RESTART_HOLD", 3600.0)
    caplog.set_level(logging.INFO, logger="pywats_client.upload")
    config = _config(tmp_path, standin, upload_helper="always")

    async def scenario() -> None:
        async with _helper_running(config) as (queue, helper):
            assert helper.pid is not None
            psutil.Process(helper.pid).kill()
            await async_wait_until(lambda: not helper.usable, 30, message="the death seen")
            await _queue_reports(queue, range(150))  # busy: would start one at once
            await _drained(queue, timeout=30)
            assert helper.pid is None and helper.answered == 0

    _run(scenario())
    _on_server_once_each(standin, range(150))
    assert len(_messages(caplog, "upload helper started")) == 1


def test_a_hung_helper_is_killed_and_the_worker_sends_its_reports(
    standin: StandinClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr(helper_module, "HUNG_AFTER", 2.0)
    monkeypatch.setattr(helper_module, "RESTART_HOLD", 3600.0)
    config = _config(tmp_path, standin, upload_helper="always")

    async def scenario() -> int:
        async with _helper_running(config) as (queue, helper):
            pid = helper.pid
            assert pid is not None
            psutil.Process(pid).suspend()  # SIGSTOP; on Windows its threads suspended
            await _queue_reports(queue, range(30))
            await _drained(queue, timeout=30)
            assert not helper.usable and queue.retried == 0
            return pid

    pid = _run(scenario())
    assert _reaped(pid)
    _on_server_once_each(standin, range(30))
    assert _messages(caplog, "(hung)")


def test_a_slow_server_is_not_taken_for_a_hung_helper(
    standin: StandinClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr(helper_module, "HUNG_AFTER", 3.0)
    standin.set_faults(latency_ms=6000)  # each answer takes twice HUNG_AFTER
    config = _config(tmp_path, standin, upload_helper="always")

    async def scenario() -> None:
        async with _helper_running(config) as (queue, helper):
            await _queue_reports(queue, range(5))
            await _drained(queue, timeout=30)
            assert helper.usable and helper.answered == 5

    _run(scenario())
    assert not _messages(caplog, "(hung)")


def _crash_at_once(sock: Any, config: Any) -> None:
    """A helper that dies before it is ready (a broken install, a virus scanner)."""
    os._exit(3)


def _deaf(sock: Any, config: Any) -> None:
    """A helper that says it is ready, then never reads its socket again."""
    sock.sendall(b"\0" * 8)  # one beat
    time.sleep(3600)  # the hang under test; the worker kills it


def _mute(sock: Any, config: Any) -> None:
    """A helper that beats and reads its uploads but never answers them (a lost answer)."""

    def beat() -> None:
        with contextlib.suppress(OSError):
            while True:
                sock.sendall(b"\0" * 8)
                time.sleep(0.2)

    threading.Thread(target=beat, daemon=True).start()
    while sock.recv(65536):
        pass
    os._exit(0)


def test_an_upload_the_helper_never_answers_goes_from_the_worker(
    standin: StandinClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr(helper_module, "helper_main", _mute)
    monkeypatch.setattr(helper_module, "ANSWER_GRACE", 0.5)
    monkeypatch.setattr(helper_module, "RESTART_HOLD", 3600.0)
    config = _config(tmp_path, standin, upload_helper="always", request_timeout=0.5)

    async def scenario() -> int:
        async with _helper_running(config) as (queue, helper):
            pid = helper.pid
            assert pid is not None
            await _queue_reports(queue, range(20))
            await _drained(queue, timeout=30)
            assert not helper.usable and queue.retried == 0 and queue.uploaded == 20
            return pid

    assert _reaped(_run(scenario()))
    _on_server_once_each(standin, range(20))
    assert _messages(caplog, "no answer to an upload within 2.5 s")


def test_a_helper_that_cannot_start_leaves_the_uploads_to_the_worker(
    standin: StandinClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr(helper_module, "helper_main", _crash_at_once)
    config = _config(tmp_path, standin, upload_helper="always")

    async def scenario() -> None:
        async with running_uploader(config) as (queue, _):
            helper = _helper(queue)
            await async_wait_until(
                lambda: _messages(caplog, "did not start"), 60, message="the failed start logged"
            )
            await _queue_reports(queue, range(30))
            await _drained(queue)
            assert not helper.usable and helper.answered == 0

    _run(scenario())
    _on_server_once_each(standin, range(30))
    assert "exit code 3" in _messages(caplog, "did not start")[0]
    assert not _helpers_alive()


def test_a_helper_deaf_to_its_closed_socket_is_killed_at_stop(
    standin: StandinClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr(helper_module, "helper_main", _deaf)
    monkeypatch.setattr(helper_module, "EXIT_GRACE", 0.5)
    config = _config(tmp_path, standin, upload_helper="always")

    async def scenario() -> int:
        async with _helper_running(config) as (_queue, helper):
            assert helper.pid is not None
            return helper.pid

    assert _reaped(_run(scenario()))
    assert _messages(caplog, "did not end within 0.5 s")


@pytest.mark.parametrize("after", [0.0, 0.01, 0.05, 0.2, 1.0])
def test_a_stop_at_any_moment_of_the_start_leaves_no_process(
    standin: StandinClient, tmp_path: Path, after: float
) -> None:
    config = _config(tmp_path, standin, upload_helper="always")

    async def scenario() -> None:
        helper = UploadHelper(config)
        helper.start_soon()
        await asyncio.sleep(after)  # the moment of the stop, not a wait for a condition
        await helper.close()
        assert helper.pid is None and not helper.usable

    _run(scenario())
    assert not _helpers_alive()


def test_auto_runs_the_helper_while_the_station_is_busy_and_stops_it_when_idle(
    standin: StandinClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(helper_module, "BUSY_UPLOADS", 40)
    monkeypatch.setattr(helper_module, "BUSY_WINDOW", 60.0)
    monkeypatch.setattr(helper_module, "IDLE_STOP", 0.5)
    monkeypatch.setattr(queue_service_module, "IDLE_RECHECK", 0.1)
    config = _config(tmp_path, standin)
    assert config.upload_helper == "auto"

    async def scenario() -> None:
        async with running_uploader(config) as (queue, _):
            helper = _helper(queue)
            await _queue_reports(queue, range(10))
            await _drained(queue)
            assert helper.pid is None  # a few reports: no process started for them
            await _queue_reports(queue, range(10, 300))
            await async_wait_until(lambda: helper.usable, 60, message="helper started")
            pid = helper.pid
            assert pid is not None
            await _drained(queue)
            await async_wait_until(lambda: _reaped(pid), 30, message="helper stopped")
            assert helper.pid is None

    _run(scenario())
    _on_server_once_each(standin, range(300))


def test_auto_runs_a_helper_only_in_a_free_slot_and_frees_it(
    standin: StandinClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    _own_slots: Path,
) -> None:
    monkeypatch.setattr(helper_module, "BUSY_UPLOADS", 20)
    monkeypatch.setattr(helper_module, "SLOT_RETRY", 0.2)
    monkeypatch.setattr(helper_module, "helper_slots", lambda: 1)
    config = _config(tmp_path, standin)
    _own_slots.mkdir()
    other_station = exclusive_lock(_own_slots / "slot-0.lock")
    other_station.acquire()  # every spare core has a helper already

    async def scenario() -> None:
        async with running_uploader(config) as (queue, _):
            helper = _helper(queue)
            await _queue_reports(queue, range(200))
            await _drained(queue)
            assert helper.pid is None and helper.answered == 0  # uploaded from the worker
            other_station.release()
            await _queue_reports(queue, range(200, 400))
            await async_wait_until(lambda: helper.usable, 60, message="helper in the free slot")
            await _drained(queue)
        # stopped with its uploader: the slot is free again
        assert exclusive_lock(_own_slots / "slot-0.lock").acquire()

    _run(scenario())
    _on_server_once_each(standin, range(400))


def test_never_keeps_uploads_in_the_worker(standin: StandinClient, tmp_path: Path) -> None:
    config = _config(tmp_path, standin, upload_helper="never")

    async def scenario() -> None:
        async with running_uploader(config) as (queue, _):
            assert queue._helper is None
            await _queue_reports(queue, range(20))
            await _drained(queue)

    _run(scenario())
    _on_server_once_each(standin, range(20))
