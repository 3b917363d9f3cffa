"""WATSClient (the seed's orchestrator) against the stand-in, and the instance lock."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pywats_client.cli import main
from pywats_client.core import ClientConfig, WATSClient, acquire_instance_lock
from pywats_client.errors import ConfigError, InstanceLockedError
from tests._standin import PrivateStandin, StandinClient
from tests.helpers import async_wait_until, rescanned


def wsjf(sn: str) -> dict[str, Any]:
    return {
        "type": "T",
        "pn": "PN-100",
        "sn": sn,
        "rev": "A",
        "processCode": 10,
        "result": "P",
        "start": "2026-03-02T09:15:00+01:00",
        "root": {"id": 0, "group": "M", "stepType": "SequenceCall", "name": "Main", "status": "P"},
    }


def drop(folder: Path, sn: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sn}.json"
    path.write_text(json.dumps(wsjf(sn)))
    return path


def make_config(tmp_path: Path, server: StandinClient | None, **overrides: Any) -> ClientConfig:
    (tmp_path / "converters").mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "instance_name": "test-station",
        "service_address": server.url if server else "",
        "api_token": server.token if server else "",
        "watch_paths": [tmp_path / "in"],
        "queue_path": tmp_path / "queue",
        "converter_path": tmp_path / "converters",
        "ready_after": 0.1,
    }
    settings.update(overrides)
    return ClientConfig(**settings)


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def started(config: ClientConfig, stop_timeout: float = 10.0) -> AsyncIterator[WATSClient]:
    """A started client, stopped at the end whatever the test did."""
    client = WATSClient(config)
    await client.start()
    try:
        yield client
    finally:
        await client.stop(timeout=stop_timeout)


async def until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> None:
    await async_wait_until(predicate, timeout, message=what or str(predicate))


async def server_answers(standin: StandinClient, count: int) -> None:
    """Wait until the server answered ``count`` more API requests.

    With a short ``ping_interval`` these are the client's connection checks: the
    yardstick for "the client ran on and still did not upload".
    """

    def requests() -> int:
        return int(standin.stats()["requests"])

    first = await asyncio.to_thread(requests)

    async def enough() -> bool:
        return await asyncio.to_thread(requests) >= first + count

    await async_wait_until(enough, 20, message=f"{count} more requests answered by the server")


def test_files_reach_the_server_and_the_snapshot_counts_them(
    tmp_path: Path, standin: StandinClient
) -> None:
    config = make_config(tmp_path, standin)
    drop(tmp_path / "in", "SN-0")  # present before start

    async def body() -> None:
        async with started(config) as client:
            for n in range(1, 5):
                drop(tmp_path / "in", f"SN-{n}")
            await until(lambda: client.snapshot().uploaded == 5, what="5 uploads")
            snap = client.snapshot()
            assert (snap.files_seen, snap.converted, snap.errored, snap.queued) == (5, 5, 0, 5)
            assert (snap.pending, snap.failed) == (0, 0)
            assert snap.connection == "connected" and snap.server_version
            data = json.dumps(snap.to_dict())
            assert standin.token not in data
        reports = standin.reports()
        assert sorted(r["sn"] for r in reports) == [f"SN-{n}" for n in range(5)]
        assert all(r["times_received"] == 1 for r in reports)
        assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["Done"]

    run(body)


def test_the_snapshot_counts_the_files_parked_in_error(tmp_path: Path) -> None:
    """What status shows of a running station: its own count, made at each rescan."""
    config = make_config(tmp_path, None)
    bad = tmp_path / "in" / "bad.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{ not a report")

    async def body() -> None:
        async with started(config, stop_timeout=2) as client:
            assert client.watcher is not None
            await until(lambda: client.snapshot().errored == 1, what="parked in Error")
            await rescanned(client.watcher)
            snap = client.snapshot()
            assert (snap.in_error, snap.error_folders) == (1, {str(bad.parent / "Error"): 1})

    run(body)


def test_server_away_keeps_reports_queued_and_sources_go_to_done(tmp_path: Path) -> None:
    # A closed port: the official client's trap was moving such sources to Error.
    config = make_config(tmp_path, None, service_address="http://127.0.0.1:9", api_token="dG9rZW4=")
    drop(tmp_path / "in", "SN-1")

    async def body() -> None:
        async with started(config, stop_timeout=2) as client:
            await until(lambda: client.snapshot().queued == 1, what="queued")
            snap = client.snapshot()
            assert snap.pending == 1 and snap.uploaded == 0 and snap.errored == 0
            assert snap.connection == "disconnected"
            assert (tmp_path / "in" / "Done" / "SN-1.json").exists()
            # the error says since when it shows, so an old one reads as history
            assert snap.last_error and snap.last_error_at is not None
            assert time.time() - 60 < snap.last_error_at <= time.time()
            assert client.snapshot().last_error_at == snap.last_error_at

    run(body)


def test_last_error_is_the_newest_so_an_outage_is_not_hidden_behind_an_old_bad_file(
    tmp_path: Path, standin_factory: Callable[..., PrivateStandin]
) -> None:
    server = standin_factory()
    config = make_config(tmp_path, server, ping_interval=0.2)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.json").write_text("{not json")

    async def body() -> None:
        async with started(config, stop_timeout=2) as client:
            await until(lambda: client.snapshot().errored == 1, what="bad file judged")
            bad = client.snapshot()
            assert bad.last_error and "broken.json" in bad.last_error
            assert bad.last_error_at is not None
            await asyncio.to_thread(server.stop)
            await until(lambda: client.snapshot().connection == "disconnected", what="outage seen")
            outage = client.snapshot()
            assert outage.last_error and "broken.json" not in outage.last_error
            assert outage.last_error_at is not None and outage.last_error_at > bad.last_error_at
            await asyncio.to_thread(server.start)
            await until(lambda: client.snapshot().connection == "connected", what="reconnected")
            # the outage is over: the bad file is the last error again, with its own time
            after = client.snapshot()
            assert (after.last_error, after.last_error_at) == (bad.last_error, bad.last_error_at)

    run(body)


@pytest.mark.skipif(sys.platform != "linux", reason="names that are not UTF-8 need Linux")
def test_file_names_that_are_not_utf8_do_not_stop_the_station(
    tmp_path: Path, standin: StandinClient
) -> None:
    # A tester writing raw bytes in a name: the intake loop died on it, then crash-looped.
    config = make_config(tmp_path, standin)
    watch = tmp_path / "in"
    watch.mkdir()
    broken = os.fsdecode(b"broken-\xff.json")  # as Python sees such a name
    for name, text in (
        (os.fsdecode(b"SN-BYTES-\xff\xfe.json"), json.dumps(wsjf("SN-BYTES"))),
        (broken, "{not json"),
        ("SN-PLAIN.json", json.dumps(wsjf("SN-PLAIN"))),
    ):
        (watch / name).write_text(text, encoding="utf-8")

    async def body() -> None:
        async with started(config) as client:
            await until(lambda: client.snapshot().uploaded == 2, what="both valid ones uploaded")
            await until(lambda: client.snapshot().errored == 1, what="the broken one parked")
            assert client.intake is not None and client.intake.running
        reports = standin.reports()
        assert sorted(r["sn"] for r in reports) == ["SN-BYTES", "SN-PLAIN"]
        error = watch / "Error"
        assert sorted(p.name for p in error.iterdir()) == [broken, broken + ".error.txt"]
        reason = (error / (broken + ".error.txt")).read_text(encoding="utf-8")
        assert "broken-\\udcff.json" in reason

    run(body)


def test_a_quarantined_queue_file_is_counted_and_warned_about(
    tmp_path: Path, standin: StandinClient
) -> None:
    config = make_config(tmp_path, standin)
    pending = tmp_path / "queue" / "pending"
    pending.mkdir(parents=True)
    (pending / "01700000000000000000-0a0b0c0d-1111-2222-3333-444455556666.json").write_text("{")
    drop(tmp_path / "in", "SN-1")

    async def body() -> None:
        async with started(config) as client:
            await until(lambda: client.snapshot().uploaded == 1, what="the good one uploaded")
            await until(lambda: client.snapshot().quarantined == 1, what="the bad one set aside")
            (warning,) = [w for w in client.snapshot().warnings if "quarantine" in w]
            assert "1 queue file(s)" in warning and ".reason.txt" in warning

    run(body)


def test_auto_submit_false_queues_without_uploading(tmp_path: Path, standin: StandinClient) -> None:
    config = make_config(tmp_path, standin, auto_submit=False, ping_interval=0.2)
    drop(tmp_path / "in", "SN-1")

    async def body() -> None:
        async with started(config) as client:
            await until(lambda: client.snapshot().queued == 1, what="queued")
            await server_answers(standin, 3)  # connected and checking, yet not uploading
            snap = client.snapshot()
            assert snap.pending == 1 and snap.uploaded == 0 and snap.uploads == "disabled"
        assert standin.reports() == []

    run(body)


def test_pause_and_resume_uploads(tmp_path: Path, standin: StandinClient) -> None:
    config = make_config(tmp_path, standin, ping_interval=0.2)

    async def body() -> None:
        async with started(config) as client:
            client.pause_uploads()
            drop(tmp_path / "in", "SN-1")
            await until(lambda: client.snapshot().queued == 1, what="queued")
            await server_answers(standin, 3)  # connected and checking, yet not uploading
            assert client.snapshot().uploads == "paused"
            assert client.snapshot().uploaded == 0
            client.resume_uploads()
            await until(lambda: client.snapshot().uploaded == 1, what="upload after resume")

    run(body)


def test_stop_intake_leaves_new_files_in_place(tmp_path: Path, standin: StandinClient) -> None:
    config = make_config(tmp_path, standin)

    async def body() -> None:
        async with started(config) as client:
            drop(tmp_path / "in", "SN-1")
            await until(lambda: client.snapshot().uploaded == 1, what="first upload")
            client.stop_intake()
            drop(tmp_path / "in", "SN-2")
            intake = client.intake
            assert intake is not None
            # the intake loop winds down: from then on nothing can take SN-2
            await until(lambda: not intake.running, what="the intake loop to end")
            snap = client.snapshot()
            assert snap.intake_paused and snap.converted == 1
            assert (tmp_path / "in" / "SN-2.json").exists()

    run(body)


def test_converter_plugin_problem_is_a_warning_not_a_failure(
    tmp_path: Path, standin: StandinClient
) -> None:
    config = make_config(tmp_path, standin)
    (tmp_path / "converters" / "broken.py").write_text("import does_not_exist\n")

    async def body() -> None:
        async with started(config) as client:
            warnings = client.snapshot().warnings
            assert any("broken.py" in w for w in warnings), warnings

    run(body)


def test_instance_lock_names_the_holder(tmp_path: Path) -> None:
    config = make_config(tmp_path, None)
    lock = acquire_instance_lock(config)
    try:
        assert (config.queue_dir / "instance.pid").read_text().strip() == str(os.getpid())
        with pytest.raises(InstanceLockedError) as caught:
            acquire_instance_lock(config)
        assert caught.value.holder_pid == os.getpid()
        assert str(os.getpid()) in str(caught.value)
        assert "test-station" in str(caught.value)
    finally:
        lock.release()
    assert not (config.queue_dir / "instance.pid").exists()
    acquire_instance_lock(config).release()  # free again


def test_a_queue_folder_the_account_may_not_write_is_a_config_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The usual install slip: the folder made by an admin, the service run as another account.
    config = make_config(tmp_path, None)
    config.queue_dir.mkdir(parents=True)

    class Refused:
        def acquire(self) -> None:
            path = str(config.queue_dir / "instance.lock")
            raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr("pywats_client._pidlock.exclusive_lock", lambda path: Refused())
    with pytest.raises(ConfigError) as caught:
        acquire_instance_lock(config)
    assert caught.value.key == "queue_path"
    message = str(caught.value)
    assert f"{config.queue_dir} is not writable for this account" in message
    assert "instance.lock" in message and "write access" in message
    config_file = tmp_path / "config.json"
    config_file.write_text(config.model_dump_json())
    assert main(["run", "--config", str(config_file)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "is not writable for this account" in err and "this is a bug" not in err


def test_a_full_disk_at_the_lock_is_retried_not_called_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A config error makes the station fatal until its config changes: wrong for a
    # passing fault such as a full disk while writing instance.pid.
    config = make_config(tmp_path, None)

    class Full:
        def acquire(self) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("pywats_client._pidlock.exclusive_lock", lambda path: Full())
    with pytest.raises(OSError) as caught:
        acquire_instance_lock(config)
    assert not isinstance(caught.value, ConfigError)
    assert caught.value.errno == errno.ENOSPC


def test_load_problems_show_as_warnings_labelled_by_kind(tmp_path: Path) -> None:
    """A broken plugin and a settings typo: each named once, neither called the other."""
    (tmp_path / "converters").mkdir()
    (tmp_path / "converters" / "broken.py").write_text("def oops(:\n")
    config = make_config(tmp_path, None, converters={"wsjff": {"x": 1}})

    async def body() -> None:
        async with started(config, stop_timeout=2) as client:
            warnings = client.snapshot().warnings
        plugin = [w for w in warnings if "broken.py" in w]
        settings = [w for w in warnings if "wsjff" in w]
        assert len(plugin) == 1 and plugin[0].startswith("converter not loaded: plugin:")
        assert len(settings) == 1 and settings[0].startswith("config: converters.wsjff")

    run(body)
