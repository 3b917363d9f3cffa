"""The stand-in server object: listening socket, connections, store and lifecycle.

``StandinServer`` is for asyncio code (``async with StandinServer() as s``);
:func:`run` is the blocking entry point of ``pywats-client server``: it writes
the port file once the socket listens and stops cleanly on SIGTERM/SIGINT
(Ctrl+C or Ctrl+Break on Windows).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import filelock
import psutil

from pywats_client._fsutil import atomic_write_text, ensure_private_dir
from pywats_client.errors import InstanceLockedError
from pywats_client.standin._http import DEFAULT_MAX_BODY, Connection
from pywats_client.standin._routes import DEFAULT_VERSION, StandinApp
from pywats_client.standin._store import ReportStore

__all__ = ["StandinServer", "generate_token", "run"]

log = logging.getLogger("pywats_client.standin")

LOCK_NAME = "standin.lock"


def generate_token() -> str:
    """A random token shaped like a WATS one (base64 of ``user:secret``)."""
    return base64.b64encode(f"standin:{secrets.token_hex(16)}".encode()).decode("ascii")


class StandinServer:
    """A local WATS-compatible server.

    ``port=0`` picks a free port (read :attr:`port` after :meth:`start`).
    ``token=None`` generates one (:attr:`token`). ``data_dir=None`` keeps the
    reports in a temp folder that :meth:`stop` removes; a given ``data_dir``
    keeps them across restarts, and only one server may use it at a time.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        data_dir: Path | str | None = None,
        *,
        version: str = DEFAULT_VERSION,
        max_body: int = DEFAULT_MAX_BODY,
        idle_timeout: float = 120.0,
    ) -> None:
        self.host = host
        self.token = token if token is not None else generate_token()
        self.token_generated = token is None
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.version = version
        self.max_body = max_body
        self.idle_timeout = idle_timeout
        self._requested_port = port
        self._port: int | None = None
        self._own_dir = False
        self._lock: filelock.BaseFileLock | None = None
        self._server: asyncio.base_events.Server | None = None
        self._connections: dict[Connection, asyncio.Task[None]] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._stop_requested: asyncio.Event | None = None
        self.store: ReportStore | None = None
        self.app: StandinApp | None = None

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"StandinServer({where}, data_dir={str(self.data_dir)!r}, token=***)"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the stand-in server is not started; call start() first")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and listen. Raises InstanceLockedError if the data folder is in use."""
        if self._server is not None:
            raise RuntimeError("the stand-in server is already started")
        await asyncio.to_thread(self._open_data)
        assert self.store is not None
        try:
            self.app = StandinApp(self.store, self.token, version=self.version)
            self._server = await asyncio.start_server(
                self._on_connection, self.host, self._requested_port, backlog=1024
            )
        except BaseException:
            await asyncio.to_thread(self._close_data)
            raise
        self._port = int(self._server.sockets[0].getsockname()[1])
        self._stop_requested = asyncio.Event()
        self._reaper = asyncio.create_task(self._reap_idle())

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening, finish answers in progress (up to ``grace`` s), close the store."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        if self._reaper is not None:
            self._reaper.cancel()
        for connection in list(self._connections):
            connection.close_if_idle()
        tasks = list(self._connections.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), timeout=1.0)
        await asyncio.to_thread(self._close_data)

    def request_stop(self) -> None:
        """Make :meth:`serve` return (call from the server's event loop)."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def serve(self) -> None:
        """Start (unless started), serve until :meth:`request_stop`, then stop."""
        if self._server is None:
            await self.start()
        assert self._stop_requested is not None
        try:
            await self._stop_requested.wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> StandinServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- internals ----------------------------------------------------------------------

    def _open_data(self) -> None:
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="pywats-standin-"))
            self._own_dir = True
        ensure_private_dir(self.data_dir)
        lock = filelock.FileLock(str(self.data_dir / LOCK_NAME), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise InstanceLockedError(
                f"{self.data_dir}: another stand-in server is already using this data folder; "
                "stop it or pass a different --data folder"
            ) from None
        self._lock = lock
        try:
            store = ReportStore(self.data_dir)
            store.open()
        except BaseException:
            self._release()
            raise
        self.store = store

    def _close_data(self) -> None:
        if self.store is not None:
            self.store.close()
        self._release()
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        assert self.app is not None
        connection = Connection(reader, writer, self.app.handle, max_body=self.max_body)
        task = asyncio.current_task()
        assert task is not None
        self._connections[connection] = task
        try:
            await connection.serve()
        finally:
            del self._connections[connection]

    async def _reap_idle(self) -> None:
        """Close keep-alive connections idle longer than ``idle_timeout``."""
        interval = max(0.05, min(self.idle_timeout / 4, 5.0))
        while True:
            await asyncio.sleep(interval)
            deadline = time.monotonic() - self.idle_timeout
            for connection in list(self._connections):
                if connection.idle and connection.last_active < deadline:
                    connection.close_if_idle()


def _install_stop_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
    """SIGTERM/SIGINT stop the server; on Windows also Ctrl+Break (SIGBREAK)."""
    if sys.platform == "win32":

        def handler(signum: int, frame: object) -> None:
            loop.call_soon_threadsafe(stop)

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGBREAK, handler)
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)


def run(
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    data_dir: Path | str | None = None,
    *,
    port_file: Path | str | None = None,
    on_ready: Callable[[StandinServer], None] | None = None,
    parent_pid: int | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (blocking). ``on_ready`` runs once the socket listens.

    With ``parent_pid`` the server also stops when that process is gone, so a
    parent killed without cleaning up (kill -9, a crashed test run) leaves no
    orphan server behind.
    """

    parent_born = _birth(parent_pid) if parent_pid is not None else None

    async def main() -> None:
        server = StandinServer(host, port, token, data_dir)
        await server.start()
        _install_stop_signals(asyncio.get_running_loop(), server.request_stop)
        watcher = None
        if parent_pid is not None:
            watcher = asyncio.create_task(
                _stop_when_gone(parent_pid, parent_born, server.request_stop)
            )
        try:
            if port_file is not None:
                await asyncio.to_thread(atomic_write_text, Path(port_file), f"{server.port}\n")
            if on_ready is not None:
                on_ready(server)
            await server.serve()
        finally:
            if watcher is not None:
                watcher.cancel()
            await server.stop()
            if port_file is not None:
                _remove_port_file(Path(port_file), server.port)

    asyncio.run(main())


def _birth(pid: int) -> float | None:
    """When process ``pid`` started (tells it from a later process given the same pid)."""
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


async def _stop_when_gone(
    pid: int, born: float | None, stop: Callable[[], None], interval: float = 1.0
) -> None:
    """Call ``stop`` once process ``pid`` (started at ``born``) has exited."""
    while born is not None and _birth(pid) == born:
        await asyncio.sleep(interval)
    log.warning("parent process %d is gone; stopping the stand-in server", pid)
    stop()


def _remove_port_file(path: Path, port: int) -> None:
    """Remove the port file on a clean stop, unless a newer server has rewritten it."""
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8").strip() == str(port):
            path.unlink()
