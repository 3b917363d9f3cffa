"""StandinServer's public API: lifecycle, data folder, tokens, in-process use with httpx."""

from __future__ import annotations

import asyncio
import base64
import socket
import sqlite3
import uuid
from pathlib import Path

import httpx
import pytest

from pywats_client.errors import InstanceLockedError
from pywats_client.standin import ServerThread, StandinServer, generate_token


def test_generated_tokens_are_random_base64() -> None:
    token = generate_token()
    assert base64.b64decode(token).startswith(b"standin:")
    assert token != generate_token()


def test_port_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = StandinServer().port


def test_in_process_async_use_with_httpx(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with StandinServer(data_dir=tmp_path) as server:
            assert server.token_generated
            assert server.token not in repr(server)
            headers = {"Authorization": f"Basic {server.token}"}
            async with httpx.AsyncClient(
                base_url=server.url, headers=headers, trust_env=False
            ) as http:
                report_id = str(uuid.uuid4())
                answers = await asyncio.gather(
                    *(
                        http.post("/api/Report/WSJF", json={"id": report_id, "pn": "P", "sn": "S"})
                        for _ in range(5)
                    )
                )
                assert {a.status_code for a in answers} == {200}
                listed = (await http.get("/standin/reports")).json()
        assert [r["times_received"] for r in listed] == [5]

    asyncio.run(scenario())
    # The answered reports are in the database the server left behind.
    with sqlite3.connect(tmp_path / "standin.sqlite3") as db:
        assert db.execute("SELECT times_received FROM reports").fetchall() == [(5,)]


def test_temp_data_folder_is_removed_on_stop() -> None:
    server = StandinServer()
    with ServerThread(server):
        assert server.data_dir is not None
        data_dir = server.data_dir
        assert (data_dir / "standin.sqlite3").exists()
    assert not data_dir.exists()


def test_one_server_per_data_folder(tmp_path: Path) -> None:
    with ServerThread(StandinServer(data_dir=tmp_path)):
        second = ServerThread(StandinServer(data_dir=tmp_path))
        with pytest.raises(InstanceLockedError, match="already using this data folder"):
            second.start()
    # Released on stop: the folder can be served again.
    with ServerThread(StandinServer(data_dir=tmp_path)) as again:
        assert again.port > 0


def test_port_in_use_is_an_oserror_and_releases_the_folder(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            ServerThread(StandinServer(port=port, data_dir=tmp_path)).start()
    with ServerThread(StandinServer(data_dir=tmp_path)) as server:
        assert server.port != 0


def test_idle_keep_alive_connections_are_closed_after_the_timeout() -> None:
    with (
        ServerThread(StandinServer(idle_timeout=0.2)) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock,
    ):
        # No request at all: the reaper closes the connection (recv sees EOF).
        assert sock.recv(1) == b""


def test_a_large_report_is_accepted_whole() -> None:
    infos = [{"description": f"info {i}", "text": "x" * 100} for i in range(40_000)]
    report = {"id": str(uuid.uuid4()), "pn": "P", "sn": "S", "miscInfos": infos}
    with (
        ServerThread(StandinServer()) as server,
        httpx.Client(
            base_url=server.url, headers={"Authorization": f"Basic {server.token}"}, trust_env=False
        ) as http,
    ):
        answer = http.post("/api/Report/WSJF", json=report, timeout=60)
        assert answer.status_code == 200
        stored = http.get(f"/api/Report/Wsjf/{report['id']}", timeout=60).json()
    assert len(stored["miscInfos"]) == 40_000
