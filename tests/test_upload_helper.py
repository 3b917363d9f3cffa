"""The upload helper process: outcomes cross it unchanged; its death, hang or failure to
start loses and doubles nothing; "auto" runs it only while the station is busy."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

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

    async def submit_report(self, body: bytes) -> None:
        if self.error is not None:
            raise self.error


def _across(error: Exception | None) -> PyWATSClientError | None:
    """What the worker raises for what the helper's client raised (through JSON)."""
    answer = asyncio.run(_outcome_of(_Raising(error), b"{}"))
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


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


def _helper(queue: QueueService) -> UploadHelper:
    helper = queue._helper
    assert helper is not None
    return helper


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


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


def test_reports_go_through_the_helper_and_it_ends_with_the_uploader(
    standin: StandinClient, tmp_path: Path
) -> None:
    config = load(write_config(tmp_path, standin.url, standin.token, upload_helper="always"))

    async def scenario() -> int:
        async with running_uploader(config) as (queue, _):
            helper = _helper(queue)
            await async_wait_until(lambda: helper.usable, 60, message="helper running")
            pid = helper.pid
            assert pid is not None and pid != os.getpid()
            await _queue_reports(queue, range(200))
            await _drained(queue)
            assert helper.answered == 200  # each upload went through the helper
        assert helper.pid is None
        return pid

    pid = _run(scenario())
    assert _gone(pid)
    stored = _on_server_once_each(standin, range(200))
    assert all(r["times_received"] == 1 for r in stored)


def test_the_token_is_neither_on_the_helpers_command_line_nor_in_its_environment(
    standin: StandinClient, tmp_path: Path
) -> None:
    config = load(write_config(tmp_path, standin.url, standin.token, upload_helper="always"))

    async def scenario() -> None:
        async with running_uploader(config) as (queue, _):
            helper = _helper(queue)
            await async_wait_until(lambda: helper.usable, 60, message="helper running")
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
    config = load(write_config(tmp_path, standin.url, standin.token, upload_helper="always"))
    rng = random.Random(20261127)
    count = 400

    async def scenario() -> list[int]:
        killed: list[int] = []
        async with running_uploader(config) as (queue, _):
            helper = _helper(queue)
            await _queue_reports(queue, range(count))
            for _ in range(3):
                await async_wait_until(
                    lambda: helper.usable and helper.pid not in killed, 60, message="a new helper"
                )
                answered = helper.answered
                await async_wait_until(
                    lambda a=answered: helper.answered > a + rng.randint(5, 40),
                    60,
                    message="uploads through the helper",
                )
                assert helper.pid is not None
                killed.append(helper.pid)
                os.kill(helper.pid, signal.SIGKILL)
            await _drained(queue)
        return killed

    killed = _run(scenario())
    assert all(_gone(pid) for pid in killed)
    _on_server_once_each(standin, range(count))
    warnings = [r.getMessage() for r in caplog.records if "upload helper of" in r.getMessage()]
    assert len(warnings) == 3
    assert all("exit code -9" in w and "nothing is lost" in w for w in warnings)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP is POSIX")
def test_a_hung_helper_is_killed_and_the_worker_sends_its_reports(
    standin: StandinClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr(helper_module, "HUNG_MARGIN", 0.5)
    monkeypatch.setattr(helper_module, "RESTART_HOLD", 3600.0)
    config = load(
        write_config(
            tmp_path, standin.url, standin.token, upload_helper="always", request_timeout=1
        )
    )

    async def scenario() -> int:
        async with running_uploader(config) as (queue, _):
            helper = _helper(queue)
            await async_wait_until(lambda: helper.usable, 60, message="helper running")
            pid = helper.pid
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            await _queue_reports(queue, range(30))
            await _drained(queue)
            assert not helper.usable
            return pid

    pid = _run(scenario())
    assert _gone(pid)
    _on_server_once_each(standin, range(30))
    assert any("killed" in r.getMessage() and "hung" in r.getMessage() for r in caplog.records)


def _crash_at_once(sock: Any, config: Any) -> None:
    """A helper that dies before its hello (a broken install, a virus scanner)."""
    os._exit(3)


def test_a_helper_that_cannot_start_leaves_the_uploads_to_the_worker(
    standin: StandinClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr(helper_module, "helper_main", _crash_at_once)
    config = load(write_config(tmp_path, standin.url, standin.token, upload_helper="always"))

    async def scenario() -> None:
        async with running_uploader(config) as (queue, _):
            helper = _helper(queue)
            await async_wait_until(
                lambda: any("did not start" in r.getMessage() for r in caplog.records),
                60,
                message="the failed start logged",
            )
            await _queue_reports(queue, range(30))
            await _drained(queue)
            assert not helper.usable and helper.answered == 0

    _run(scenario())
    _on_server_once_each(standin, range(30))


def test_auto_runs_the_helper_while_the_station_is_busy_and_stops_it_when_idle(
    standin: StandinClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(helper_module, "BUSY_UPLOADS", 40)
    monkeypatch.setattr(helper_module, "BUSY_WINDOW", 60.0)
    monkeypatch.setattr(helper_module, "IDLE_STOP", 0.5)
    monkeypatch.setattr(queue_service_module, "IDLE_RECHECK", 0.1)
    config = load(write_config(tmp_path, standin.url, standin.token))
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
            await async_wait_until(lambda: _gone(pid), 30, message="helper stopped")
            assert helper.pid is None

    _run(scenario())
    _on_server_once_each(standin, range(300))


def test_never_keeps_uploads_in_the_worker(standin: StandinClient, tmp_path: Path) -> None:
    config = load(write_config(tmp_path, standin.url, standin.token, upload_helper="never"))

    async def scenario() -> None:
        async with running_uploader(config) as (queue, _):
            assert queue._helper is None
            await _queue_reports(queue, range(20))
            await _drained(queue)

    _run(scenario())
    _on_server_once_each(standin, range(20))
