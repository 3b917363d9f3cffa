"""Local network pieces for the factory-network tests: a TLS WATS endpoint and a forward proxy.

Both listen on 127.0.0.1 only, run in daemon threads and record what they saw,
so tests can check that the client really went through the proxy or really
presented its certificate. No outside network is ever used.
"""

from __future__ import annotations

import base64
import contextlib
import select
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ForwardProxy", "VersionEndpoint"]


class _VersionHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):  # handshake here, so failures send alerts
            self.request.do_handshake()
        super().setup()

    def do_GET(self) -> None:
        server: Any = self.server
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        server.owner.seen.append({"path": self.path, "peer_cert": peer})
        body = b'"24.1.0"' if self.path == "/api/App/Version" else b'{"Message":"not found"}'
        self.send_response(200 if self.path == "/api/App/Version" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # refused handshakes are what some tests are about


class VersionEndpoint:
    """``GET /api/App/Version`` over HTTP or HTTPS (``context`` given) on 127.0.0.1."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.seen: list[dict[str, Any]] = []
        self._server = _QuietServer(("127.0.0.1", 0), _VersionHandler)
        self._server.owner = self  # type: ignore[attr-defined]
        if context is not None:
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.port = self._server.server_address[1]
        self.scheme = "https" if context is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> VersionEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    sockets = [a, b]
    while True:
        readable, _, _ = select.select(sockets, [], [], 10)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            (b if sock is a else a).sendall(data)


class _ProxyHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        owner: ForwardProxy = self.server.owner  # type: ignore[attr-defined]
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.connection.recv(4096)
            if not chunk:
                return
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        pairs = (line.split(":", 1) for line in lines[1:])
        headers = {k.strip().lower(): v.strip() for k, v in pairs}
        authorized = owner.credentials is None or headers.get("proxy-authorization") == (
            "Basic " + base64.b64encode(owner.credentials.encode()).decode()
        )
        owner.seen.append({"method": method, "target": target, "authorized": authorized})
        if not authorized:
            self.connection.sendall(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="factory"\r\nContent-Length: 0\r\n'
                b"Connection: close\r\n\r\n"
            )
            return
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=10) as upstream:
                self.connection.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _pipe(self.connection, upstream)
            return
        # plain HTTP, absolute-form target: forward once, then close
        without_scheme = target.split("://", 1)[1]
        hostport, _, path = without_scheme.partition("/")
        host, _, port = hostport.partition(":")
        kept = [h for h in lines[1:] if not h.lower().startswith(("proxy-", "connection"))]
        request = "\r\n".join([f"{method} /{path} HTTP/1.1", *kept, "Connection: close", "", ""])
        with socket.create_connection((host, int(port or 80)), timeout=10) as upstream:
            upstream.sendall(request.encode("latin-1") + rest)
            while data := upstream.recv(65536):
                self.connection.sendall(data)


class ForwardProxy:
    """A tiny HTTP forward proxy (CONNECT tunnels and plain forwarding) on 127.0.0.1.

    With ``credentials="user:password"`` it answers 407 to requests without
    that ``Proxy-Authorization``.
    """

    def __init__(self, credentials: str | None = None) -> None:
        self.credentials = credentials
        self.seen: list[dict[str, Any]] = []
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, userinfo: str | None = None) -> str:
        auth = f"{userinfo}@" if userinfo else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def serving(*servers: Any) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.enter_context(server)
        yield
