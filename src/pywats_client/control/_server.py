"""The supervisor's end of the control channel.

One accept thread takes connections (``multiprocessing.connection.Listener``
without its built-in authkey step, so that a client that connects and says
nothing cannot hold up the accept loop); each connection is served in its own
thread: the ``authkey`` challenge both ways (``deliver_challenge`` /
``answer_challenge``, the same handshake ``Listener(authkey=...)`` runs), one
JSON request, one JSON reply, close. A :class:`~._watchdog.Watchdog` bounds
every read, so garbage, partial or huge messages cost a thread for at most
``io_timeout`` seconds and never reach the supervisor's loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, Listener, answer_challenge, deliver_challenge
from pathlib import Path
from typing import Any

from pywats_client._fsutil import ensure_private_dir
from pywats_client.control import _endpoint as ep
from pywats_client.control._commands import ControlTarget, Failure, execute
from pywats_client.control._protocol import (
    MAX_REQUEST_BYTES,
    BadRequest,
    decode,
    encode,
    error_reply,
    ok_reply,
    parse_request,
)
from pywats_client.control._watchdog import Watchdog

__all__ = ["ControlServer"]

log = logging.getLogger("pywats_client.control")

#: Seconds a client has for the handshake and its request (and the server for its reply).
IO_TIMEOUT = 10.0
#: Connections served at once; more are closed at once (a local flood cannot exhaust threads).
MAX_CLIENTS = 16
#: Longest the supervisor takes to run one command on its loop (its COMMAND_TIMEOUT).
COMMAND_ALLOWANCE = 30.0
_WARN_EVERY = 10.0


class ControlServer:
    """Listens on the state folder's control address until :meth:`close`."""

    def __init__(
        self,
        target: ControlTarget,
        state_dir: Path,
        *,
        io_timeout: float = IO_TIMEOUT,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.target = target
        self.state_dir = state_dir
        self.io_timeout = io_timeout
        self.max_clients = max_clients
        self.endpoint: ep.Endpoint | None = None
        self.started_at = time.time()
        self._key = b""
        self._listener: Listener | None = None
        self._accept_thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._active = 0
        self._active_lock = threading.Lock()
        self._watchdog = Watchdog()
        self._last_warning: dict[str, float] = {}

    @property
    def address(self) -> str | None:
        return self.endpoint.address if self.endpoint else None

    @property
    def active_clients(self) -> int:
        """Connections being served now."""
        with self._active_lock:
            return self._active

    # --- life --------------------------------------------------------------------------

    def start(self) -> None:
        """Create the key, bind the address, publish it; OSError if that fails."""
        ensure_private_dir(self.state_dir)
        self._key = ep.create_key(self.state_dir)
        endpoint = ep.choose_address(self.state_dir)
        if endpoint.family == "AF_UNIX":
            ep.remove_stale_socket(endpoint.address)
        self._listener = Listener(
            endpoint.address, family=endpoint.family, backlog=self.max_clients
        )
        if endpoint.family == "AF_UNIX":
            Path(endpoint.address).chmod(0o600)
        self.endpoint = ep.Endpoint(endpoint.address, endpoint.family, os.getpid())
        ep.write_endpoint(self.state_dir, self.endpoint)
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="pywats-control-accept", daemon=True
        )
        self._accept_thread.start()

    def close(self) -> None:
        """Stop accepting, unpublish the address and key; replies in progress may finish."""
        if self._closing.is_set():
            return
        self._closing.set()
        endpoint = self.endpoint
        thread = self._accept_thread
        if thread is not None and endpoint is not None:
            with contextlib.suppress(OSError):  # wake the blocked accept()
                ep.connect(endpoint, 1.0).close()
            thread.join(5.0)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        for name in (ep.ADDR_NAME, ep.KEY_NAME):
            with contextlib.suppress(OSError):
                (self.state_dir / name).unlink()

    # --- accepting ---------------------------------------------------------------------

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._closing.is_set():
            try:
                conn = listener.accept()
            except OSError as exc:
                if self._closing.is_set():
                    return
                self._warn("accept", "control: accept failed: %s", exc)
                self._closing.wait(0.1)  # e.g. out of file descriptors: do not spin
                continue
            if self._closing.is_set():
                conn.close()
                return
            with self._active_lock:
                full = self._active >= self.max_clients
                if not full:
                    self._active += 1
            if full:
                self._warn("full", "control: %d clients connected; refusing more", self._active)
                conn.close()
                continue
            threading.Thread(
                target=self._serve, args=(conn,), name="pywats-control-client", daemon=True
            ).start()

    def _warn(self, topic: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last_warning.get(topic, -_WARN_EVERY) >= _WARN_EVERY:
            self._last_warning[topic] = now
            log.warning(message, *args)

    # --- one connection ----------------------------------------------------------------

    def _serve(self, conn: Connection[Any, Any]) -> None:
        watch = self._watchdog.watch(conn, self.io_timeout)
        try:
            self._converse(conn, watch.extend)
        except Exception as exc:  # noqa: BLE001 - a client must never take the server down
            if watch.expired:
                log.warning(
                    "control: client%s timed out after %.0f s", _peer(conn), self.io_timeout
                )
            else:
                log.warning("control: dropped a client%s: %r", _peer(conn), exc)
        finally:
            watch.finish()
            with contextlib.suppress(OSError):
                conn.close()
            with self._active_lock:
                self._active -= 1

    def _converse(self, conn: Connection[Any, Any], extend: Callable[[float], None]) -> None:
        try:
            deliver_challenge(conn, self._key)
            answer_challenge(conn, self._key)
        except AuthenticationError:
            log.warning(
                "control: refused a client%s: wrong key (AuthenticationError); "
                "clients must read %s",
                _peer(conn),
                self.state_dir / ep.KEY_NAME,
            )
            return
        except (EOFError, ConnectionError) as exc:  # e.g. a client that gave up waiting on us
            log.info("control: a client%s left during the handshake (%s)", _peer(conn), exc)
            return
        except (OSError, AssertionError, ValueError, struct.error) as exc:
            log.warning(
                "control: refused a client%s: not the control handshake (%s)", _peer(conn), exc
            )
            return
        try:
            payload = conn.recv_bytes(MAX_REQUEST_BYTES)
        except OSError:
            if conn.readable:  # not the length check (which marks the connection unreadable)
                raise
            log.warning("control: request over %d bytes refused%s", MAX_REQUEST_BYTES, _peer(conn))
            conn.send_bytes(encode(error_reply("bad-request", "request too large")))
            return
        try:
            request = parse_request(decode(payload))
        except BadRequest as exc:
            log.warning("control: malformed request%s: %s", _peer(conn), exc)
            conn.send_bytes(encode(error_reply("bad-request", str(exc))))
            return
        extend(request.wait + COMMAND_ALLOWANCE + self.io_timeout)
        if request.command != "ping":
            what = "all instances" if request.all else ", ".join(request.names) or "registry"
            log.info("control: %s %s requested%s", request.command, what, _peer(conn))
        try:
            reply = ok_reply(execute(self.target, request, started_at=self.started_at))
        except Failure as exc:
            reply = error_reply(exc.kind, exc.message, **exc.details)
        except FutureTimeout:
            reply = error_reply("busy", "the supervisor did not run the command in time")
        except Exception as exc:  # a bug must not take the channel down: say so, log it
            log.exception("control: %s failed", request.command)
            reply = error_reply("refused", f"the supervisor failed to run it: {exc!r}")
        conn.send_bytes(encode(reply))


def _peer(conn: Connection[Any, Any]) -> str:
    """`` (pid N, uid U)`` of a Unix-socket peer where the OS tells (Linux), else ''."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None or sys.platform == "win32":
        return ""
    try:
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", raw)
    except (OSError, ValueError, struct.error):
        return ""
    return f" (pid {pid}, uid {uid})"
