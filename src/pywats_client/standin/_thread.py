"""Run a :class:`StandinServer` on its own event loop in a background thread.

For synchronous callers (the demo, unit tests with a plain HTTP client) that
want the server in-process without owning an event loop.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from pywats_client.standin._server import StandinServer

__all__ = ["ServerThread"]


class ServerThread:
    """``with ServerThread(StandinServer(...)) as server: ... server.url ...``"""

    def __init__(self, server: StandinServer | None = None) -> None:
        self.server = server if server is not None else StandinServer()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> StandinServer:
        """Start the thread; returns once the server listens (re-raises a startup error)."""
        if self._thread is not None:
            raise RuntimeError("this ServerThread was already started")
        self._thread = threading.Thread(target=self._main, name="standin-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the stand-in server did not start within {timeout} s")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self.server

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server (finishing answers in progress) and join the thread."""
        if self._thread is None or self._loop is None:
            return
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.server.request_stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the stand-in server did not stop within {timeout} s")

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await self.server.start()
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self.server.serve()
