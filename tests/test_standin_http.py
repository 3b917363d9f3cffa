"""HTTP/1.1 behaviour of the stand-in over real sockets (server in-process, in a thread)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pywats_client.core.config import ClientConfig
from pywats_client.errors import ReportRejectedError
from pywats_client.services.api_client import WATSApiClient
from pywats_client.standin import ServerThread, StandinServer
from tests.helpers import wait_until

TOKEN = "c3RhbmRpbjpodHRw"
AUTH = f"Authorization: Basic {TOKEN}\r\n".encode()


@pytest.fixture(scope="module")
def server() -> Iterator[StandinServer]:
    with ServerThread(StandinServer(token=TOKEN, max_body=4096)) as running:
        yield running


@pytest.fixture(autouse=True)
def _clean(server: StandinServer) -> None:
    with connect(server) as sock:
        sock.sendall(post("/standin/reset", b""))
        assert read_response(sock.makefile("rb"))[0] == 200


def connect(server: StandinServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    return sock


def report_body() -> bytes:
    return json.dumps({"id": str(uuid.uuid4()), "pn": "PN", "sn": "SN"}).encode()


def post(path: str, body: bytes, extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return (
        b"POST " + path.encode() + b" " + version + b"\r\nHost: x\r\n" + AUTH + extra
        + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


def get(path: str, extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + AUTH + extra + b"\r\n"


def read_response(stream: IO[bytes]) -> tuple[int, dict[str, str], bytes]:
    """One response from ``stream``: (status, lower-case headers, body)."""
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_keep_alive_serves_many_requests_on_one_connection(server: StandinServer) -> None:
    with connect(server) as sock:
        stream = sock.makefile("rb")
        for _ in range(3):
            sock.sendall(post("/api/Report/WSJF", report_body()))
            status, headers, _ = read_response(stream)
            assert status == 200
            assert "connection" not in headers


def test_pipelined_requests_are_answered_in_order(server: StandinServer) -> None:
    bodies = [report_body() for _ in range(3)]
    ids = [json.loads(body)["id"] for body in bodies]
    with connect(server) as sock:
        sock.sendall(b"".join(post("/api/Report/WSJF", body) for body in bodies) + get("/x"))
        stream = sock.makefile("rb")
        answers = [read_response(stream) for _ in range(4)]
    assert [json.loads(body)["ID"] for _, _, body in answers[:3]] == ids
    assert answers[3][0] == 404


def test_connection_close_is_honoured(server: StandinServer) -> None:
    with connect(server) as sock:
        sock.sendall(get("/api/App/Version", b"Connection: close\r\n"))
        status, headers, body = read_response(sock.makefile("rb"))
        assert (status, headers["connection"], json.loads(body)) == (200, "close", "24.1.0-standin")
        assert closed_by_server(sock)


def test_http_1_0_client_gets_one_answer_then_close(server: StandinServer) -> None:
    with connect(server) as sock:
        sock.sendall(post("/api/Report/WSJF", report_body(), version=b"HTTP/1.0"))
        stream = sock.makefile("rb")
        line = stream.readline()
        assert line.startswith(b"HTTP/1.1 200")
        assert stream.read().endswith(b"}")
        assert closed_by_server(sock)


def test_chunked_body_is_accepted(server: StandinServer) -> None:
    body = report_body()
    chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, body[:10], len(body) - 10, body[10:])
    head = (
        b"POST /api/Report/WSJF HTTP/1.1\r\nHost: x\r\n"
        + AUTH
        + b"Transfer-Encoding: chunked\r\n\r\n"
    )
    with connect(server) as sock:
        sock.sendall(head + chunked)
        status, _, answer = read_response(sock.makefile("rb"))
    assert (status, json.loads(answer)["ID"]) == (200, json.loads(body)["id"])


def test_expect_100_continue(server: StandinServer) -> None:
    body = report_body()
    head = post("/api/Report/WSJF", b"", b"Expect: 100-continue\r\n")
    head = head.replace(b"Content-Length: 0", b"Content-Length: " + str(len(body)).encode())
    with connect(server) as sock:
        sock.sendall(head)
        stream = sock.makefile("rb")
        assert stream.readline().startswith(b"HTTP/1.1 100 ")
        assert stream.readline() == b"\r\n"
        sock.sendall(body)
        assert read_response(stream)[0] == 200


@pytest.mark.parametrize(
    "garbage",
    [
        b"GARBAGE\r\n\r\n",
        b"POST /api/Report/WSJF HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header line\r\n\r\n",
    ],
)
def test_garbage_gets_400_and_close(server: StandinServer, garbage: bytes) -> None:
    with connect(server) as sock:
        sock.sendall(garbage)
        status, headers, body = read_response(sock.makefile("rb"))
        assert status == 400
        assert headers["connection"] == "close"
        assert "bad HTTP request" in json.loads(body)["Message"]
        assert closed_by_server(sock)


def test_unsupported_http_version_is_505(server: StandinServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock.makefile("rb"))
    assert (status, headers["connection"]) == (505, "close")
    assert "HTTP/2.0 is not supported" in json.loads(body)["Message"]


def test_too_large_body_is_413_without_reading_it(server: StandinServer) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"POST /api/Report/WSJF HTTP/1.1\r\nHost: x\r\n"
            + AUTH
            + b"Content-Length: 5000\r\n\r\n"
        )
        status, headers, body = read_response(sock.makefile("rb"))
    assert status == 413
    assert "4096 bytes" in json.loads(body)["Message"]
    assert headers["connection"] == "close"


#: Larger than any loopback socket buffer: the client is still writing when refused.
HUGE = 24 * 1024 * 1024


def test_an_uploader_sending_a_too_large_body_gets_the_413(server: StandinServer) -> None:
    """Like the service's uploader: write the whole body, then read the answer."""

    async def post_huge() -> httpx.Response:
        async with httpx.AsyncClient(trust_env=False, timeout=60) as client:
            return await client.post(
                f"{server.url}/api/Report/WSJF",
                content=b"x" * HUGE,
                headers={"Authorization": f"Basic {TOKEN}"},
            )

    for _ in range(3):  # was a connection reset every time
        response = asyncio.run(post_huge())
        assert response.status_code == 413
        assert response.headers["connection"] == "close"
        message = response.json()["Message"]
        assert f"request body is {HUGE} bytes, larger than the limit of 4096 bytes" in message


def test_the_upload_client_reports_a_too_large_report_as_rejected_naming_its_size(
    server: StandinServer, tmp_path: Path
) -> None:
    config = ClientConfig(
        instance_name="big", service_address=server.url, api_token=TOKEN, queue_path=tmp_path
    )

    async def submit() -> None:
        async with WATSApiClient(config) as api:
            await api.submit_report({"pn": "PN", "sn": "SN", "blob": "a" * HUGE})

    with pytest.raises(ReportRejectedError) as caught:
        asyncio.run(submit())
    assert caught.value.status_code == 413  # dead-lettered by the uploader, not retried
    assert "larger than the limit of 4096 bytes" in str(caught.value)


def test_the_rest_of_a_refused_body_is_read_then_the_connection_closes(
    server: StandinServer,
) -> None:
    body = b"y" * 300_000
    with connect(server) as sock:
        sock.sendall(
            b"POST /api/Report/WSJF HTTP/1.1\r\nHost: x\r\n"
            + AUTH
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        stream = sock.makefile("rb")
        status, headers, _ = read_response(stream)  # answered before the body is sent
        assert (status, headers["connection"]) == (413, "close")
        for start in range(0, len(body), 16_384):  # still taken: read and dropped, not reset
            sock.sendall(body[start : start + 16_384])
        assert closed_by_server(sock)


def test_too_large_chunked_body_is_413(server: StandinServer) -> None:
    head = (
        b"POST /api/Report/WSJF HTTP/1.1\r\nHost: x\r\n"
        + AUTH
        + b"Transfer-Encoding: chunked\r\n\r\n"
    )
    with connect(server) as sock:
        sock.sendall(head + b"1000\r\n" + b"x" * 4096 + b"\r\n1\r\nx\r\n")
        assert read_response(sock.makefile("rb"))[0] == 413


def test_huge_headers_are_refused(server: StandinServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        status, _, body = read_response(sock.makefile("rb"))
    assert status in (400, 431)
    assert "bad HTTP request" in json.loads(body)["Message"]


def test_down_fault_closes_without_an_answer(server: StandinServer) -> None:
    with connect(server) as sock:
        sock.sendall(post("/standin/faults", b'{"down": true}'))
        assert read_response(sock.makefile("rb"))[0] == 200
    try:
        with connect(server) as sock:
            sock.sendall(get("/api/App/Version"))
            assert closed_by_server(sock)
    finally:
        with connect(server) as sock:
            sock.sendall(post("/standin/faults", b"{}"))
            assert read_response(sock.makefile("rb"))[0] == 200


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(min_size=1, max_size=300))
def test_random_bytes_never_break_the_server(server: StandinServer, data: bytes) -> None:
    with connect(server) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(15)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert answer == b"" or answer.startswith(b"HTTP/1.1 ")
    with connect(server) as sock:
        sock.sendall(get("/api/App/Version"))
        assert read_response(sock.makefile("rb"))[0] == 200


def test_stop_closes_idle_keep_alive_connections_promptly() -> None:
    thread = ServerThread(StandinServer(token=TOKEN))
    running = thread.start()
    sock = connect(running)
    try:
        sock.sendall(get("/api/App/Version"))
        assert read_response(sock.makefile("rb"))[0] == 200
        began = time.monotonic()
        thread.stop()
        assert time.monotonic() - began < 3
        assert closed_by_server(sock)
    finally:
        sock.close()


def test_stop_finishes_an_answer_in_progress() -> None:
    thread = ServerThread(StandinServer(token=TOKEN))
    running = thread.start()
    with connect(running) as sock:
        sock.sendall(post("/standin/faults", b'{"latency_ms": 500}'))
        stream = sock.makefile("rb")
        assert read_response(stream)[0] == 200
        sock.sendall(post("/api/Report/WSJF", report_body()))
        app = running.app
        assert app is not None
        # stop once the server is inside the (500 ms slow) answer, not before it read it
        wait_until(lambda: app.stats.requests == 1, 15, 0.01, message="the upload received")
        thread.stop()
        status, headers, _ = read_response(stream)
    assert (status, headers["connection"]) == (200, "close")


def test_head_gets_headers_but_no_body(server: StandinServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"HEAD /api/App/Version HTTP/1.1\r\nHost: x\r\n" + AUTH + b"\r\n")
        sock.sendall(get("/api/App/Version"))
        stream = sock.makefile("rb")
        assert stream.readline().startswith(b"HTTP/1.1 405 ")
        headers = {}
        while (line := stream.readline()) != b"\r\n":
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        assert int(headers["content-length"]) > 0
        # No body followed: the next bytes are the second response.
        assert read_response(stream)[0] == 200


def test_a_failing_route_answers_500_and_the_server_goes_on(
    server: StandinServer, caplog: pytest.LogCaptureFixture
) -> None:
    assert server.app is not None
    routes = server.app._routes
    original = routes[("GET", "/api/app/version")]

    async def broken(request: object) -> None:
        raise RuntimeError("bug")

    routes[("GET", "/api/app/version")] = broken  # type: ignore[assignment]
    try:
        with connect(server) as sock:
            sock.sendall(get("/api/App/Version"))
            status, _, body = read_response(sock.makefile("rb"))
    finally:
        routes[("GET", "/api/app/version")] = original
    assert status == 500
    assert "internal error" in json.loads(body)["Message"]
    assert "error while handling GET /api/App/Version" in caplog.text
    with connect(server) as sock:
        sock.sendall(get("/api/App/Version"))
        assert read_response(sock.makefile("rb"))[0] == 200
