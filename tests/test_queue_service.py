"""QueueService against a scripted HTTP server (httpx.MockTransport) and a real queue folder."""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest

from pywats_client.core import ClientConfig
from pywats_client.core.connection_config import build_http_client
from pywats_client.core.snapshot import UploadState
from pywats_client.queue import NewReport, QueueItem, QueueStore
from pywats_client.queue import _files as queue_files
from pywats_client.queue import store as queue_store_module
from pywats_client.services import ConnectionService, QueueService, WATSApiClient
from pywats_client.services import queue as queue_service_module
from pywats_client.services.queue import backoff_delay
from tests.helpers import async_wait_until

Responder = Callable[[str, int], httpx.Response | Awaitable[httpx.Response]]


class FakeWats:
    """A scripted WATS server: ``respond(report_id, call_no)`` decides each answer."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.times: list[float] = []
        self.down = False
        self.respond: Responder = lambda rid, n: httpx.Response(200, json={"ID": rid})

    async def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("All connection attempts failed")
        if request.url.path == "/api/App/Version":
            return httpx.Response(200, json="24.1.0")
        report_id = json.loads(request.content)["id"]
        self.received.append(report_id)
        self.times.append(time.monotonic())
        answer = self.respond(report_id, len(self.received))
        if not isinstance(answer, httpx.Response):
            answer = await answer
        return answer

    def counts(self) -> Counter[str]:
        return Counter(self.received)


class CeilingJitter(random.Random):
    """Backoff "jitter" that always picks the ceiling: every retry delay is known."""

    def uniform(self, a: float, b: float) -> float:
        return b


class CountingQueue(QueueService):
    """A QueueService that counts its loop's looks at whether it may upload now.

    Held (paused, disabled) the loop sleeps until kicked; :func:`looks_again`
    wakes it and waits for the look, so a negative check rests on the loop
    having decided again, not on wall time passing.
    """

    looks = 0

    def _held(self) -> tuple[UploadState, float] | None:
        self.looks += 1
        return super()._held()


async def looks_again(queue: CountingQueue, times: int = 3) -> None:
    """Wake the uploader ``times`` times; each time wait until its loop looked."""
    for _ in range(times):
        seen = queue.looks
        queue.wake()
        await async_wait_until(
            lambda seen=seen: queue.looks > seen, 15, message="the uploader to look"
        )


def config_for(tmp_path: Path, **overrides: Any) -> ClientConfig:
    settings: dict[str, Any] = {
        "service_address": "http://wats.test",
        "api_token": "dG9rZW4=",
        "queue_path": str(tmp_path / "queue"),
        "retry": {"initial_delay": 0.05, "max_delay": 0.2},
    }
    settings.update(overrides)
    return ClientConfig.from_dict(settings)


def api_for(config: ClientConfig, server: FakeWats) -> WATSApiClient:
    http = build_http_client(config, transport=httpx.MockTransport(server.handler))
    return WATSApiClient(config, http_client=http)


def reports(n: int, start: int = 0) -> list[NewReport]:
    return [
        NewReport(
            report={"type": "T", "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"r{i}")), "sn": str(i)},
            source_name=f"f{i}.txt",
            source_sha256="00",
            converter="test",
        )
        for i in range(start, start + n)
    ]


def ids(items: list[NewReport]) -> list[str]:
    return [item.id for item in items]


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


async def status_of(service: QueueService) -> dict[str, Any]:
    return await service.get_status()


def test_seed_usage_uploads_everything_fifo_and_empties_the_queue(tmp_path: Path) -> None:
    server = FakeWats()
    config = config_for(tmp_path, max_concurrent_uploads=1)
    items = reports(20)

    async def main() -> None:
        api = api_for(config, server)
        queue = QueueService(config, api)  # the seed README's call
        queue.store.enqueue(items)
        await queue.start()
        await async_wait_until(lambda: len(server.received) == 20, 20, message="20 uploads")
        status = await queue.get_status()
        await async_wait_until(lambda: queue.store.counts().pending == 0, 20, message="empty")
        await queue.stop()
        await api.aclose()
        assert status["failed"] == 0
        assert {"pending", "failed", "in_flight", "in_backoff", "uploaded", "state"} <= set(status)

    run(main())
    assert server.received == ids(items)  # FIFO with one upload at a time
    assert list((tmp_path / "queue" / "pending").iterdir()) == []


def test_concurrent_uploads_are_bounded(tmp_path: Path) -> None:
    server = FakeWats()
    config = config_for(tmp_path, max_concurrent_uploads=3)
    active = {"now": 0, "max": 0}

    async def slow(rid: str, n: int) -> httpx.Response:
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        await asyncio.sleep(0.02)  # the scenario: a busy server, so uploads overlap
        active["now"] -= 1
        return httpx.Response(200, json={})

    server.respond = slow

    async def main() -> None:
        queue = QueueService(config, api_for(config, server))
        queue.store.enqueue(reports(30))
        await queue.start()
        await async_wait_until(lambda: queue.uploaded == 30, 15, message="30 uploads")
        await queue.stop()

    run(main())
    assert active["max"] == 3
    assert len(server.counts()) == 30


class ThreadNotingStore(QueueStore):
    """A real store that notes, per claim and complete, whether it ran on the loop's thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.loop_thread: int | None = None
        self.calls: list[tuple[str, bool]] = []  # (call, on the loop's thread)

    def _note(self, call: str) -> None:
        self.calls.append((call, threading.get_ident() == self.loop_thread))

    def claim_many(self, limit: int, *, scan: bool = True) -> list[QueueItem]:
        self._note("claim" if scan else "claim without scan")
        return super().claim_many(limit, scan=scan)

    def complete(self, item: QueueItem, *, flush_when_full: bool = True) -> None:
        self._note("complete" if not flush_when_full else "complete, flushing when full")
        super().complete(item, flush_when_full=flush_when_full)


def test_claims_and_completes_stay_on_the_loop_listings_go_to_a_thread(tmp_path: Path) -> None:
    """A hop to a thread costs more than reading a small queued report (the two
    threads trade the interpreter lock at every system call): claims that need
    no listing of pending/, and completes (a rename), run on the loop."""
    server = FakeWats()
    config = config_for(tmp_path, max_concurrent_uploads=2)
    store = ThreadNotingStore(config.queue_dir)
    items = reports(40)

    async def main() -> None:
        store.loop_thread = threading.get_ident()
        store.enqueue(items)
        queue = QueueService(config, api_for(config, server), store=store)
        await queue.start()
        await async_wait_until(lambda: queue.uploaded == 40, 15, message="40 uploads")
        await queue.stop()

    run(main())
    assert server.counts() == Counter(ids(items))
    on_loop = Counter(call for call, here in store.calls if here)
    elsewhere = Counter(call for call, here in store.calls if not here)
    assert set(elsewhere) <= {"claim"}, elsewhere  # only listings leave the loop
    assert "claim" not in on_loop
    assert on_loop["claim without scan"] >= 10  # 40 reports, at most 4 per claim
    assert on_loop["complete"] == 40


class FailingCompleteStore(QueueStore):
    """A real store whose complete fails (an I/O error) once, for one report."""

    def __init__(self, path: Path, fail_id: str) -> None:
        super().__init__(path)
        self.fail_id: str | None = fail_id

    def complete(self, item: QueueItem, *, flush_when_full: bool = True) -> None:
        if item.id == self.fail_id:
            self.fail_id = None
            raise OSError(errno.EIO, "Input/output error", str(self.pending_dir / item.name))
        super().complete(item, flush_when_full=flush_when_full)


def test_a_failed_complete_keeps_the_rest_of_its_batch_exact(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reports completed before the failure are counted and logged once; the failed
    one and those after it stay pending and go again (same id), never counted twice."""
    monkeypatch.setattr(queue_service_module, "STORAGE_HOLD", 0.05)
    caplog.set_level(logging.INFO, logger="pywats_client.upload")
    server = FakeWats()
    config = config_for(tmp_path, max_concurrent_uploads=5)
    items = reports(30)
    store = FailingCompleteStore(config.queue_dir, fail_id=items[3].id)

    async def main() -> None:
        store.enqueue(items)
        queue = QueueService(config, api_for(config, server), store=store)
        await queue.start()
        await async_wait_until(lambda: queue.uploaded == 30, 20, message="30 reports settled")
        await queue.stop()
        assert queue.uploaded == 30

    run(main())
    accepted_lines = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("accepted by")
    ]
    logged = Counter(i for i in ids(items) for line in accepted_lines if i in line)
    assert logged == Counter(ids(items))  # each accepted report logged exactly once
    assert set(server.counts()) == set(ids(items))
    assert store.counts().pending == 0
    assert list(store.pending_dir.iterdir()) == []


def test_rejected_report_goes_to_failed_with_the_servers_reason(tmp_path: Path) -> None:
    server = FakeWats()
    items = reports(3)
    bad = items[1].id
    canary = reports(1, start=3)[0]
    busy: Counter[str] = Counter()

    def respond(rid: str, n: int) -> httpx.Response:
        if rid == bad:
            return httpx.Response(400, json={"Message": "SN contains illegal characters"})
        if rid == canary.id and busy[rid] < 2:
            busy[rid] += 1
            return httpx.Response(503, text="busy")
        return httpx.Response(200, json={})

    server.respond = respond
    config = config_for(tmp_path)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server), rng=CeilingJitter())
        queue.store.enqueue(items)
        await queue.start()
        await async_wait_until(
            lambda: queue.uploaded == 2 and queue.rejected == 1,
            15,
            message="2 uploaded, 1 rejected",
        )
        status = await queue.get_status()
        assert (status["pending"], status["failed"], status["rejected"]) == (0, 1, 1)
        # A (wrong) retry of the rejected report would be due 0.05 s after the
        # rejection. Queued after it, a canary waits out 0.05 s + 0.1 s of backoff
        # before it is accepted: by then the uploader has claimed every due report.
        queue.store.enqueue([canary])
        queue.wake()
        await async_wait_until(lambda: queue.uploaded == 3, 15, message="the canary accepted")
        assert queue.retried == 2
        await queue.stop()

    run(main())
    assert server.counts()[bad] == 1
    (failed,) = QueueStore(tmp_path / "queue").iter_items("failed")
    assert failed.id == bad
    assert "SN contains illegal characters" in (failed.envelope.last_error or "")
    assert failed.envelope.last_status == 400


def test_transient_failures_are_retried_with_persisted_attempts(tmp_path: Path) -> None:
    server = FakeWats()
    failures: Counter[str] = Counter()

    def flaky(rid: str, n: int) -> httpx.Response:
        if failures[rid] < 2:
            failures[rid] += 1
            return httpx.Response(503, text="maintenance")
        return httpx.Response(200, json={})

    server.respond = flaky
    config = config_for(tmp_path)
    items = reports(5)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server), rng=random.Random(1))
        queue.store.enqueue(items)
        await queue.start()
        await async_wait_until(lambda: queue.uploaded == 5, 15, message="5 uploads")
        status = await queue.get_status()
        await queue.stop()
        assert status["retried"] == 10
        assert status["last_error"] is None  # passed: the server accepts reports again

    run(main())
    assert server.counts() == Counter({i: 3 for i in ids(items)})


def test_attempts_survive_a_restart(tmp_path: Path) -> None:
    server = FakeWats()
    server.respond = lambda rid, n: httpx.Response(500, text="boom")
    config = config_for(tmp_path, retry={"initial_delay": 30, "max_delay": 60})
    items = reports(1)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server), rng=random.Random(3))
        queue.store.enqueue(items)
        await queue.start()
        await async_wait_until(lambda: queue.retried == 1, 20, message="one retry scheduled")
        await queue.stop()

    run(main())
    (item,) = QueueStore(tmp_path / "queue").iter_items("pending")
    assert item.envelope.attempts == 1
    assert item.envelope.last_status == 500
    assert item.envelope.next_attempt_at is not None


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (
            {"retry": {"initial_delay": 0.01, "max_delay": 0.02, "max_attempts": 3}},
            "gave up after 3 attempts",
        ),
        ({"retry_failed": False}, "retry_failed is false"),
    ],
)
def test_giving_up_parks_the_report(tmp_path: Path, overrides: dict[str, Any], words: str) -> None:
    server = FakeWats()
    server.respond = lambda rid, n: httpx.Response(502, text="bad gateway")
    config = config_for(tmp_path, **overrides)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server))
        queue.store.enqueue(reports(1))
        await queue.start()
        await async_wait_until(lambda: queue.dead_lettered == 1, 20, message="parked")
        await queue.stop()

    run(main())
    (failed,) = QueueStore(tmp_path / "queue").iter_items("failed")
    assert words in (failed.envelope.last_error or "")
    assert "502" in (failed.envelope.last_error or "")
    expected = overrides.get("retry", {}).get("max_attempts", 1)
    assert failed.envelope.attempts == expected == len(server.received)


def test_unauthorized_pauses_everything_and_parks_nothing(tmp_path: Path) -> None:
    server = FakeWats()
    token_ok = {"value": False}
    server.respond = lambda rid, n: (
        httpx.Response(200, json={}) if token_ok["value"] else httpx.Response(401)
    )
    config = config_for(tmp_path)
    items = reports(10)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server), unauthorized_retry=0.3)
        queue.store.enqueue(items)
        await queue.start()
        await async_wait_until(lambda: queue.state == "unauthorized", 20, message="unauthorized")
        status = await queue.get_status()
        assert status["state"] == "unauthorized"
        assert "token" in status["last_error"]
        tried = len(server.received)
        # the uploader goes on trying, slowly: one report every unauthorized_retry s
        await async_wait_until(
            lambda: len(server.received) >= tried + 3, 15, message="3 more tries"
        )
        times = server.times[tried:]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert min(gaps) >= 0.29, gaps
        assert queue.store.counts().failed == 0
        for item in queue.store.iter_items("pending"):
            assert item.envelope.attempts == 0  # nothing burned while unauthorized
        token_ok["value"] = True
        await async_wait_until(lambda: queue.uploaded == 10, 20, message="all uploaded")
        # the loop's state catches up on its next turn (the uploads run on their own task)
        await async_wait_until(
            lambda: queue.state != "unauthorized", 20, message="the state to leave unauthorized"
        )
        await queue.stop()

    run(main())
    assert set(server.received) == set(ids(items))


def test_resume_retries_at_once_after_unauthorized(tmp_path: Path) -> None:
    server = FakeWats()
    token_ok = {"value": False}
    server.respond = lambda rid, n: (
        httpx.Response(200, json={}) if token_ok["value"] else httpx.Response(403)
    )
    config = config_for(tmp_path)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server), unauthorized_retry=3600)
        queue.store.enqueue(reports(2))
        await queue.start()
        await async_wait_until(lambda: queue.state == "unauthorized", 20, message="unauthorized")
        token_ok["value"] = True  # e.g. the operator fixed the token and reloaded
        queue.resume()
        await async_wait_until(lambda: queue.uploaded == 2, 15, message="uploaded after resume")
        await queue.stop()

    run(main())


def test_429_holds_the_whole_uploader_for_retry_after(tmp_path: Path) -> None:
    server = FakeWats()
    server.respond = lambda rid, n: (
        httpx.Response(429, headers={"Retry-After": "0.6"}) if n == 1 else httpx.Response(200)
    )
    config = config_for(tmp_path, max_concurrent_uploads=1)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server))
        queue.store.enqueue(reports(3))
        await queue.start()
        await async_wait_until(lambda: queue.uploaded == 3, 20, message="3 uploads")
        await queue.stop()

    run(main())
    assert server.times[1] - server.times[0] >= 0.55
    assert len(server.received) == 4


def test_auto_submit_false_only_queues(tmp_path: Path) -> None:
    server = FakeWats()
    config = config_for(tmp_path, auto_submit=False)

    async def main() -> None:
        queue = CountingQueue(config, api_for(config, server))
        queue.store.enqueue(reports(3))
        await queue.start()
        await async_wait_until(lambda: queue.state == "disabled", 15, message="disabled")
        await looks_again(queue)  # woken again and again, it still uploads nothing
        status = await queue.get_status()
        await queue.stop()
        assert (status["state"], status["pending"]) == ("disabled", 3)

    run(main())
    assert server.received == []


def test_pause_holds_and_resume_delivers(tmp_path: Path) -> None:
    server = FakeWats()
    config = config_for(tmp_path)

    async def main() -> None:
        queue = CountingQueue(config, api_for(config, server))
        queue.pause()
        await queue.start()
        queue.store.enqueue(reports(4))
        queue.wake()
        await async_wait_until(lambda: queue.state == "paused", 15, message="paused")
        await looks_again(queue)  # woken again and again, it still uploads nothing
        assert server.received == []
        queue.resume()
        await async_wait_until(lambda: queue.uploaded == 4, 15, message="4 uploads")
        await queue.stop()

    run(main())


def test_new_reports_are_picked_up_at_once(tmp_path: Path) -> None:
    server = FakeWats()
    config = config_for(tmp_path)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server))
        await queue.start()
        await async_wait_until(lambda: queue.state == "idle", 15, message="idle")
        started = time.monotonic()
        await asyncio.to_thread(queue.store.enqueue, reports(1))  # like the intake thread
        await async_wait_until(lambda: queue.uploaded == 1, 15, message="upload")
        assert time.monotonic() - started < 2.5  # not the 5 s idle re-check
        await queue.stop()

    run(main())


def test_uploads_wait_for_the_connection_and_wake_when_it_returns(tmp_path: Path) -> None:
    server = FakeWats()
    server.down = True
    config = config_for(tmp_path, retry={"initial_delay": 60, "max_delay": 300})
    items = reports(20)

    async def main() -> None:
        api = api_for(config, server)
        conn = ConnectionService(config, api, retry_min=0.1, retry_max=0.2)
        queue = QueueService(config, api, connection=conn)
        queue.store.enqueue(items)
        await conn.start()
        await queue.start()
        await async_wait_until(lambda: queue.state == "disconnected", 15, message="disconnected")
        status = await queue.get_status()
        assert status["in_flight"] == 0
        for item in queue.store.iter_items("pending"):
            assert item.envelope.attempts == 0  # no attempt burned while away
        server.down = False
        back = time.monotonic()
        await async_wait_until(lambda: queue.uploaded == 20, 20, message="20 uploads")
        # a 60 s backoff was never waited out
        assert time.monotonic() - back < 5
        await queue.stop()
        await conn.stop()

    run(main())
    assert set(server.received) == set(ids(items))


def test_server_lost_mid_upload_releases_the_report(tmp_path: Path) -> None:
    server = FakeWats()
    config = config_for(
        tmp_path, max_concurrent_uploads=1, retry={"initial_delay": 60, "max_delay": 300}
    )

    def go_down(rid: str, n: int) -> httpx.Response:
        server.down = True
        raise httpx.ReadError("connection reset")

    server.respond = go_down

    async def main() -> None:
        api = api_for(config, server)
        conn = ConnectionService(config, api, retry_min=0.1, retry_max=0.2)
        queue = QueueService(config, api, connection=conn)
        queue.store.enqueue(reports(2))
        await conn.start()
        await queue.start()
        await async_wait_until(lambda: conn.state == "disconnected", 15, message="disconnected")
        server.respond = lambda rid, n: httpx.Response(200)
        server.down = False
        await async_wait_until(lambda: queue.uploaded == 2, 20, message="2 uploads")
        await queue.stop()
        await conn.stop()
        assert queue.retried == 0

    run(main())


def test_stop_drains_in_flight_uploads(tmp_path: Path) -> None:
    server = FakeWats()

    async def slow(rid: str, n: int) -> httpx.Response:
        await asyncio.sleep(0.3)  # the scenario: a slow server, uploads in flight at stop()
        return httpx.Response(200)

    server.respond = slow
    config = config_for(tmp_path, max_concurrent_uploads=2)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server))
        queue.store.enqueue(reports(6))
        await queue.start()
        await async_wait_until(lambda: len(server.received) >= 2, 15, message="2 in flight")
        await queue.stop(timeout=5)
        assert queue.uploaded == len(server.received)  # every started upload was settled
        assert (await queue.get_status())["state"] == "stopped"

    run(main())
    left = list(QueueStore(tmp_path / "queue").iter_items("pending"))
    assert len(left) == 6 - len(server.received)


def test_stop_timeout_cancels_and_keeps_the_reports(tmp_path: Path) -> None:
    server = FakeWats()

    async def hang(rid: str, n: int) -> httpx.Response:
        await asyncio.sleep(30)  # the scenario: a server that does not answer before stop()
        return httpx.Response(200)

    server.respond = hang
    config = config_for(tmp_path)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server))
        queue.store.enqueue(reports(3))
        await queue.start()
        await async_wait_until(lambda: len(server.received) == 3, 15, message="3 in flight")
        started = time.monotonic()
        await queue.stop(timeout=0.2)
        assert time.monotonic() - started < 3

    run(main())
    assert len(list(QueueStore(tmp_path / "queue").iter_items("pending"))) == 3


def test_each_accepted_report_is_logged_with_its_serial(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = FakeWats()
    config = config_for(tmp_path)
    queued = reports(3)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server))
        queue.store.enqueue(queued)
        await queue.start()
        await async_wait_until(lambda: queue.uploaded == 3, 15, message="3 uploads")
        await queue.stop()

    with caplog.at_level(logging.INFO, logger="pywats_client.upload"):
        run(main())
    logged = " ".join(r.getMessage() for r in caplog.records if "accepted by" in r.getMessage())
    for item in queued:
        assert f"{item.report['id']} (sn {item.report['sn']})" in logged


def test_archive_sent_keeps_accepted_reports(tmp_path: Path) -> None:
    server = FakeWats()
    config = config_for(tmp_path, archive_sent=True)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server))
        queue.store.enqueue(reports(2))
        await queue.start()
        await async_wait_until(lambda: queue.uploaded == 2, 15, message="2 uploads")
        await queue.stop()

    run(main())
    assert len(list(QueueStore(tmp_path / "queue").iter_items("sent"))) == 2


def test_full_disk_while_rescheduling_keeps_the_uploader_alive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeWats()
    server.respond = lambda rid, n: httpx.Response(503) if n == 1 else httpx.Response(200)
    config = config_for(tmp_path, max_concurrent_uploads=1)
    real_write = queue_files._write_all

    def full(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(queue_service_module, "STORAGE_HOLD", 0.3)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server))
        queue.store.enqueue(reports(2))
        monkeypatch.setattr(queue_files, "_write_all", full)
        await queue.start()
        await async_wait_until(
            lambda: "disk full" in (queue.last_error or ""), 15, message="disk full noticed"
        )
        assert queue.state == "backoff"
        monkeypatch.setattr(queue_files, "_write_all", real_write)
        await async_wait_until(lambda: queue.uploaded == 2, 15, message="uploads resume")
        await queue.stop()

    run(main())


def test_a_login_page_answering_200_deletes_nothing(tmp_path: Path) -> None:
    """Until the real server answers, every report stays queued; then each goes once."""
    server = FakeWats()
    portal = {"on": True}

    def respond(rid: str, n: int) -> httpx.Response:
        if portal["on"]:
            return httpx.Response(200, text="<html>Please log in</html>")
        return httpx.Response(200, json={"ID": rid})

    server.respond = respond
    config = config_for(tmp_path, max_concurrent_uploads=2)
    items = reports(3)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server))
        queue.store.enqueue(items)
        await queue.start()
        await async_wait_until(lambda: len(server.received) >= 6, 15, message="retries")
        status = await queue.get_status()
        assert status["pending"] == 3 and status["uploaded"] == 0 and status["failed"] == 0
        assert "a web page, not as WATS does" in status["last_error"]
        portal["on"] = False
        await async_wait_until(lambda: queue.uploaded == 3, 15, message="uploads after portal")
        await queue.stop()

    run(main())
    assert sorted(server.received[-3:]) == sorted(i.report["id"] for i in items)
    assert not list((tmp_path / "queue" / "pending").iterdir())


def test_one_unreadable_queue_file_holds_back_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file a scanner holds (or a bad sector) is skipped; the rest go, it follows later."""
    server = FakeWats()
    config = config_for(tmp_path, max_concurrent_uploads=1)
    store = QueueStore(config.queue_dir)
    items = reports(5)
    store.enqueue(items)
    bad = store.pending_dir / sorted(p.name for p in store.pending_dir.iterdir())[1]
    held = {"on": True}
    real_read = Path.read_bytes

    def read_bytes(path: Path) -> bytes:
        if path == bad and held["on"]:
            raise PermissionError(13, "The process cannot access the file", str(path))
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(queue_store_module, "_UNREADABLE_FIRST_HOLD", 0.2)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server), store=store)
        await queue.start()
        await async_wait_until(lambda: queue.uploaded == 4, 15, message="the readable four")
        status = await queue.get_status()
        assert status["pending"] == 1 and status["in_flight"] == 0
        assert f"{bad} (The process cannot access the file" in status["last_error"]
        held["on"] = False
        await async_wait_until(lambda: queue.uploaded == 5, 15, message="the held one, later")
        assert (await queue.get_status())["last_error"] is None
        await queue.stop()

    run(main())
    assert sorted(server.received) == sorted(i.report["id"] for i in items)


def test_unexpected_error_is_retried_not_lost(tmp_path: Path) -> None:
    server = FakeWats()

    def buggy(rid: str, n: int) -> httpx.Response:
        if n == 1:
            raise RuntimeError("surprise")
        return httpx.Response(200)

    server.respond = buggy
    config = config_for(tmp_path)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server))
        queue.store.enqueue(reports(1))
        await queue.start()
        await async_wait_until(lambda: queue.uploaded == 1, 20, message="upload")
        await queue.stop()
        assert queue.retried == 1

    run(main())


def test_offline_instance_keeps_reports_queued(tmp_path: Path) -> None:
    config = config_for(tmp_path, service_address="")

    async def main() -> None:
        queue = QueueService(config)
        queue.store.enqueue(reports(2))
        await queue.start()
        await async_wait_until(lambda: queue.state == "offline", 15, message="offline")
        assert (await queue.get_status())["pending"] == 2
        await queue.stop()

    run(main())


def test_backoff_is_capped_full_jitter_with_retry_after_minimum() -> None:
    rng = random.Random(7)
    for attempts in range(1, 30):
        delays = [backoff_delay(attempts, initial=2, maximum=300, rng=rng) for _ in range(50)]
        ceiling = min(300, 2 * 2 ** (attempts - 1))
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter spans the range
    assert backoff_delay(1, initial=2, maximum=300, retry_after=45, rng=rng) >= 45


def test_last_error_shows_a_passing_problem_until_an_upload_succeeds(tmp_path: Path) -> None:
    server = FakeWats()
    items = reports(3)
    bad = items[2].id
    gate = asyncio.Event()

    async def respond(rid: str, n: int) -> httpx.Response:
        if rid == bad:
            return httpx.Response(400, json={"Message": "PN unknown"})
        if n == 1:
            return httpx.Response(503, text="maintenance")
        await gate.wait()
        return httpx.Response(200, json={})

    server.respond = respond
    config = config_for(tmp_path, max_concurrent_uploads=1)

    async def main() -> None:
        queue = QueueService(config, api_for(config, server))
        queue.store.enqueue(items)
        await queue.start()
        await async_wait_until(lambda: "503" in (queue.last_error or ""), 20, message="503")
        gate.set()
        await async_wait_until(lambda: queue.rejected == 1, 20, message="the rejection")
        assert "PN unknown" in (queue.last_error or "")  # a rejection stays shown
        await queue.stop()
        assert queue.uploaded == 2

    run(main())
