"""The control server's defences: keys, garbage, partial and huge messages, slow clients.

Real sockets, a fake supervisor (tests/_control_fakes.py): whatever a local
process sends, the server answers or drops that one connection, and keeps
answering everyone else.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import stat
import struct
import sys
import time
from collections.abc import Iterator
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, answer_challenge, deliver_challenge
from pathlib import Path
from typing import Any

import pytest

from pywats_client.control import ControlRefused, SupervisorControl, SupervisorNotRunning
from pywats_client.control import _endpoint as ep
from pywats_client.control._protocol import MAX_REQUEST_BYTES
from pywats_client.control._server import ControlServer
from tests._control_fakes import FakeSupervisor, serving, write_registry
from tests.helpers import wait_until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="raw Unix-socket clients")

IO_TIMEOUT = 0.5


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return write_registry(tmp_path, ["st-1", "st-2"])


@pytest.fixture
def fake(registry: Path) -> FakeSupervisor:
    return FakeSupervisor(registry, ["st-1", "st-2"])


@pytest.fixture
def server(fake: FakeSupervisor, tmp_path: Path) -> Iterator[ControlServer]:
    with serving(fake, tmp_path / ".pywats", io_timeout=IO_TIMEOUT, max_clients=4) as srv:
        yield srv


def raw(server: ControlServer) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    assert server.address is not None
    sock.connect(server.address)
    return sock


def authenticated(server: ControlServer) -> Connection[Any, Any]:
    assert server.endpoint is not None
    conn = ep.connect(server.endpoint, 5)
    key = ep.read_key(server.state_dir)
    answer_challenge(conn, key)
    deliver_challenge(conn, key)
    return conn


def answers(registry: Path) -> bool:
    return SupervisorControl(registry, timeout=5).ping().instances == ("st-1", "st-2")


def idle(server: ControlServer) -> None:
    wait_until(lambda: server.active_clients == 0, 20, message="connections served and closed")


def test_files_are_owner_only_and_removed_at_close(
    fake: FakeSupervisor, registry: Path, tmp_path: Path
) -> None:
    state = tmp_path / ".pywats"
    with serving(fake, state) as server:
        key = (state / ep.KEY_NAME).read_bytes()
        assert len(key) == ep.KEY_BYTES
        addr = json.loads((state / ep.ADDR_NAME).read_text())
        assert addr == {"address": server.address, "family": "AF_UNIX", "pid": os.getpid()}
        assert server.address == str(state / ep.SOCKET_NAME)
        for path in (state / ep.KEY_NAME, state / ep.ADDR_NAME, Path(server.address)):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert answers(registry)
    assert not any((state / n).exists() for n in (ep.KEY_NAME, ep.ADDR_NAME, ep.SOCKET_NAME))
    with pytest.raises(SupervisorNotRunning, match="pywats-client supervise --registry"):
        SupervisorControl(registry).ping()


def test_each_start_makes_a_new_key(fake: FakeSupervisor, tmp_path: Path) -> None:
    state = tmp_path / ".pywats"
    with serving(fake, state):
        first = (state / ep.KEY_NAME).read_bytes()
    with serving(fake, state):
        assert (state / ep.KEY_NAME).read_bytes() != first


def test_a_stale_socket_from_a_killed_supervisor_is_replaced(
    fake: FakeSupervisor, registry: Path, tmp_path: Path
) -> None:
    state = tmp_path / ".pywats"
    state.mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(state / ep.SOCKET_NAME))  # bound, never unlinked: what kill -9 leaves
    stale.close()
    (state / ep.ADDR_NAME).write_text(
        json.dumps({"address": str(state / ep.SOCKET_NAME), "family": "AF_UNIX", "pid": 1})
    )
    (state / ep.KEY_NAME).write_bytes(os.urandom(32))
    with pytest.raises(SupervisorNotRunning, match="nothing listens"):
        SupervisorControl(registry).ping()
    with serving(fake, state):
        assert answers(registry)


def test_something_else_at_the_socket_path_is_not_deleted(
    fake: FakeSupervisor, tmp_path: Path
) -> None:
    state = tmp_path / ".pywats"
    state.mkdir()
    (state / ep.SOCKET_NAME).write_text("not ours")
    server = ControlServer(fake, state)
    with pytest.raises(FileExistsError, match="not a socket"):
        server.start()
    server.close()
    assert (state / ep.SOCKET_NAME).read_text() == "not ours"


def test_a_state_dir_too_long_for_a_socket_path_uses_a_short_one(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    registry = write_registry(deep, ["st-1", "st-2"])
    fake = FakeSupervisor(registry, ["st-1", "st-2"])
    with serving(fake, deep / ".pywats") as server:
        assert server.address is not None
        assert len(os.fsencode(server.address)) <= ep.MAX_SOCKET_PATH
        assert not server.address.startswith(str(deep))
        assert json.loads((deep / ".pywats" / ep.ADDR_NAME).read_text())["address"] == (
            server.address
        )
        assert answers(registry)
        address = server.address
    assert not Path(address).exists()


def test_a_wrong_key_is_refused_and_logged(
    server: ControlServer, registry: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pywats_client.control")
    assert server.address is not None
    with pytest.raises(AuthenticationError):
        Client(server.address, family="AF_UNIX", authkey=os.urandom(32))
    wait_until(lambda: "wrong key" in caplog.text, 20, message="the refusal in the log")
    assert "AuthenticationError" in caplog.text
    assert answers(registry)


def test_a_client_that_gives_up_mid_handshake_is_no_warning(
    server: ControlServer, registry: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A GUI whose call timed out while the supervisor was busy: not an intruder.
    caplog.set_level(logging.INFO, logger="pywats_client.control")
    with raw(server) as sock:
        sock.recv(4096)  # the challenge, then the client goes
    wait_until(lambda: "left during the handshake" in caplog.text, 20, message="logged")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert answers(registry)


def test_a_client_holding_an_old_key_gets_control_refused(
    server: ControlServer, registry: Path
) -> None:
    (server.state_dir / ep.KEY_NAME).write_bytes(os.urandom(32))
    with pytest.raises(ControlRefused, match="refused the key"):
        SupervisorControl(registry, timeout=5).ping()


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_leave_the_server_answering(
    server: ControlServer, registry: Path, seed: int
) -> None:
    rng = random.Random(seed)
    with raw(server) as sock:
        sock.recv(4096)  # the challenge
        try:
            sock.sendall(rng.randbytes(1000))
        except OSError:
            pass  # the server may already have hung up: fine
    assert answers(registry)
    idle(server)


def test_partial_and_silent_clients_do_not_block_others(
    server: ControlServer, registry: Path
) -> None:
    silent = raw(server)
    partial = raw(server)
    partial.sendall(struct.pack("!i", 100) + b"x" * 10)  # says 100 bytes, sends 10, stalls
    try:
        assert answers(registry)  # served while both stall
        idle(server)  # both dropped after io_timeout
        for sock in (silent, partial):
            sock.settimeout(5)
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            # the server said its challenge and then hung up
            assert data.startswith(struct.pack("!i", len(data) - 4))
    finally:
        silent.close()
        partial.close()
    assert answers(registry)


def test_a_huge_length_header_is_refused_unread(server: ControlServer, registry: Path) -> None:
    with raw(server) as sock:
        sock.recv(4096)
        sock.sendall(struct.pack("!i", -1) + struct.pack("!Q", 1 << 40))
        sock.settimeout(5)
        assert sock.recv(4096) == b""  # closed at once, nothing allocated
    assert answers(registry)


def test_too_many_clients_are_turned_away_then_served_again(
    server: ControlServer, registry: Path
) -> None:
    hogs = [raw(server) for _ in range(server.max_clients)]
    try:
        wait_until(lambda: server.active_clients == server.max_clients, 20, message="all busy")
        with raw(server) as extra:
            extra.settimeout(5)
            assert extra.recv(4096) == b""  # closed without a challenge
    finally:
        for sock in hogs:
            sock.close()
    idle(server)
    assert answers(registry)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe garbage", "not UTF-8 JSON"),
        (b"[1, 2, 3]", "JSON object"),
        (json.dumps({"protocol": 1, "command": "format-disk"}).encode(), "unknown command"),
        (json.dumps({"protocol": 7, "command": "ping"}).encode(), "protocol 7"),
        (json.dumps({"protocol": 1, "command": "stop", "names": "st-1"}).encode(), "'names'"),
        (json.dumps({"protocol": 1, "command": "stop"}).encode(), "needs instance names"),
        (b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.", "not UTF-8 JSON"),  # a pickle
    ],
)
def test_malformed_requests_get_an_error_reply(
    server: ControlServer, registry: Path, fake: FakeSupervisor, payload: bytes, reason: str
) -> None:
    conn = authenticated(server)
    try:
        conn.send_bytes(payload)
        reply = json.loads(conn.recv_bytes())
    finally:
        conn.close()
    assert reply["ok"] is False
    assert reply["error"]["kind"] == "bad-request"
    assert reason in reply["error"]["message"]
    assert fake.calls == []
    assert answers(registry)


def test_an_oversized_request_gets_an_error_reply(server: ControlServer, registry: Path) -> None:
    conn = authenticated(server)
    try:
        try:
            conn.send_bytes(b" " * (MAX_REQUEST_BYTES + 1))
        except BrokenPipeError:
            pass  # refused after the header: the rest may find the server gone
        reply = json.loads(conn.recv_bytes())
    finally:
        conn.close()
    assert reply["error"] == {"kind": "bad-request", "message": "request too large"}
    assert answers(registry)


def test_close_returns_while_a_client_stalls(fake: FakeSupervisor, tmp_path: Path) -> None:
    server = ControlServer(fake, tmp_path / ".pywats", io_timeout=60)
    server.start()
    stalled = raw(server)
    try:
        wait_until(lambda: server.active_clients == 1, 20, message="the stalled client")
        began = time.monotonic()
        server.close()
        assert time.monotonic() - began < 10  # did not wait out the stalled client
    finally:
        stalled.close()
