"""HTTP/1.1 for the stand-in: one asyncio task per connection.

:mod:`._parser` turns bytes into requests (framing, limits, garbage -> 400);
this module runs the connection around it: pipelined requests are answered
strictly one after the other in order, keep-alive unless the client or the
answer says close, ``100 Continue`` when asked, closing without an answer on
request (the "down" fault), a too-large body answered 413 and then read to its
end so the client gets that answer, and graceful shutdown (idle connections
close at once, busy ones after their answer).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from pywats_client.standin._parser import HttpError, ParsedRequest, RequestParser

__all__ = [
    "DEFAULT_MAX_BODY",
    "Connection",
    "Handler",
    "Request",
    "Response",
    "json_response",
]

log = logging.getLogger("pywats_client.standin")

DEFAULT_MAX_BODY = 16 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
_READ_SIZE = 256 * 1024
#: Limits on reading the rest of a refused (413) body before closing: see Connection._refuse.
DRAIN_MAX_BYTES = 1024 * 1024 * 1024
DRAIN_MAX_SECONDS = 60.0
DRAIN_IDLE_SECONDS = 10.0


@dataclass(frozen=True)
class Request:
    """One complete request. Header names are lower-case; repeated headers are joined."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Response:
    """An answer to send, or ``drop=True`` to close the connection without one."""

    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False
    drop: bool = False


Handler = Callable[[Request], Awaitable[Response]]


def json_response(
    status: int, data: Any, headers: Iterable[tuple[str, str]] = (), *, close: bool = False
) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode("utf-8")
    return Response(status, body, headers=tuple(headers), close=close)


def _error(status: int, message: str) -> Response:
    return json_response(status, {"Message": message}, close=True)


@dataclass(eq=False)
class Connection:
    """Serves the requests of one client connection, in order, until it closes."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    handler: Handler
    max_body: int = DEFAULT_MAX_BODY
    #: ``time.monotonic()`` of the last byte received or sent (for the idle reaper).
    last_active: float = field(default_factory=time.monotonic)
    #: True while waiting for the first byte of a new request.
    idle: bool = True
    closing: bool = False
    _parser: RequestParser = field(init=False)

    def __post_init__(self) -> None:
        self._parser = RequestParser(max_header_bytes=MAX_HEADER_BYTES, max_body=self.max_body)

    def close_if_idle(self) -> None:
        """Ask the connection to end: now if idle, else after the current answer."""
        self.closing = True
        if self.idle:
            self.writer.close()

    async def serve(self) -> None:
        try:
            await self._loop()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            self.writer.close()

    async def _loop(self) -> None:
        while not self.closing:
            try:
                parsed = await self._read_request()
            except HttpError as exc:
                await self._refuse(exc)
                return
            if parsed is None:
                return
            path, _, query = parsed.target.partition("?")
            request = Request(parsed.method, path, query, parsed.headers, parsed.body)
            try:
                response = await self.handler(request)
            except Exception:  # a bug in a route must not kill the server
                log.exception("error while handling %s %s", request.method, request.path)
                response = _error(500, "internal error in the stand-in server; see its log")
            if response.drop:
                self.writer.transport.abort()
                return
            keep_alive = parsed.keep_alive and not response.close and not self.closing
            await self._send(response, parsed.method, keep_alive=keep_alive)
            if not keep_alive:
                return

    async def _refuse(self, exc: HttpError) -> None:
        """Answer a request that cannot be served, then let the client finish sending.

        A client uploading a too-large report writes its whole body before it
        reads an answer. Closing the socket with its bytes unread makes the
        kernel reset the connection, which also discards the 413 already sent:
        the client sees "connection reset" and retries forever instead of
        learning the report is too large. So the rest of the body is read and
        dropped (HTTP/1.1's "lingering close"), within limits of bytes and time.
        """
        if exc.status == 413:
            message = f"report too large for this stand-in server: {exc}"
        else:
            message = f"bad HTTP request: {exc}"
        await self._send(_error(exc.status, message), "GET")
        if exc.status == 413:
            left = None if exc.body_follows is None else exc.body_follows - self._parser.buffered
            await self._drain(left)

    async def _drain(self, left: int | None) -> None:
        """Read and drop up to ``left`` bytes (``None``: until EOF), within the drain limits."""
        budget = DRAIN_MAX_BYTES if left is None else min(left, DRAIN_MAX_BYTES)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_MAX_SECONDS
        try:
            while budget > 0 and not self.closing:
                wait = min(DRAIN_IDLE_SECONDS, deadline - loop.time())
                if wait <= 0:
                    return
                data = await asyncio.wait_for(self.reader.read(min(_READ_SIZE, budget)), wait)
                if not data:
                    return
                budget -= len(data)
                self.last_active = time.monotonic()
        except (asyncio.TimeoutError, ConnectionError):
            return

    async def _read_request(self) -> ParsedRequest | None:
        """The next complete request, or ``None`` when the client closed cleanly."""
        parser = self._parser
        while True:
            request = parser.next_request()
            if request is not None:
                return request
            if parser.wants_continue:
                parser.wants_continue = False
                await self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if parser.at_eof:
                return None
            self.idle = parser.idle
            if self.idle and self.closing:
                return None
            data = await self.reader.read(_READ_SIZE)
            self.idle = False
            self.last_active = time.monotonic()
            parser.feed(data)

    async def _send(self, response: Response, method: str, *, keep_alive: bool = False) -> None:
        head = [
            _STATUS_LINES.get(response.status) or _status_line(response.status),
            b"Server: pywats-standin\r\nContent-Type: ",
            response.content_type.encode("latin-1"),
            b"\r\nContent-Length: ",
            str(len(response.body)).encode("ascii"),
            b"\r\n",
        ]
        for name, value in response.headers:
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        head.append(b"\r\n" if keep_alive else b"Connection: close\r\n\r\n")
        if method != "HEAD":
            head.append(response.body)
        await self._write(b"".join(head))

    async def _write(self, data: bytes) -> None:
        self.writer.write(data)
        self.last_active = time.monotonic()
        await self.writer.drain()


def _status_line(status: int) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return f"HTTP/1.1 {status} {reason}\r\n".encode("ascii")


_STATUS_LINES = {status.value: _status_line(status.value) for status in HTTPStatus}
