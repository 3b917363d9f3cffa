"""The upload helper: a child process of the worker that does the HTTP part of uploads.

Why a process: intake and uploads in one worker share one interpreter lock,
and every system call of one hands it to the other; on a busy station the
HTTP client (httpx, JSON answers) took about half of it (docs/benchmarks.md).
In a helper process that work runs on the other core, and one station moves
about half as many reports again per second.

Nothing about the queue moves: the worker still claims each report, decides
retries and parks, and removes accepted reports; the helper only POSTs the
bytes it is sent and answers with the outcome, classified exactly as
:class:`WATSApiClient` classifies it. So if the helper dies, the worker sends
its unanswered reports itself (same id: the server replaces, never doubles),
and if the worker dies, the helper sees its socket close and exits at once.

``upload_helper = "auto"`` starts the helper only once the station is busy
(:data:`BUSY_UPLOADS` uploads within :data:`BUSY_WINDOW` seconds) and stops
it after :data:`IDLE_STOP` idle seconds, so a quiet station keeps one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import signal
import socket
import struct
import time
from typing import Any

from pywats_client.core.config import ClientConfig
from pywats_client.errors import (
    PyWATSClientError,
    ReportRejectedError,
    ServerUnavailableError,
    UnauthorizedError,
)

__all__ = ["HelperGone", "UploadHelper"]

log = logging.getLogger("pywats_client.upload")

#: Uploads within BUSY_WINDOW seconds that start an "auto" helper (20 reports/s).
BUSY_UPLOADS = 100
BUSY_WINDOW = 5.0
#: Idle seconds after which an "auto" helper is stopped.
IDLE_STOP = 60.0
#: Seconds the helper may take to start (spawn, imports) before the worker gives up on it.
START_TIMEOUT = 60.0
#: Seconds after a failed start or a death of the helper before another is started.
RESTART_HOLD = 60.0
#: Seconds beyond ``request_timeout`` that an unanswered upload may take before the
#: helper is judged hung and killed.
HUNG_MARGIN = 15.0

#: Frame header: request number, body length. Request 0 from the helper is its hello.
_HEADER = struct.Struct("!II")


class HelperGone(Exception):
    """The helper ended (or was stopped) before answering: send the report another way."""


# --- the helper process ------------------------------------------------------------


def helper_main(sock: socket.socket, config: ClientConfig) -> None:
    """Entry point of the helper process (spawned: importable at top level)."""
    # Its life is its socket's: Ctrl+C in the supervisor's console stops the worker,
    # whose stop (or death) closes the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_serve(sock, config))


async def _serve(sock: socket.socket, config: ClientConfig) -> None:
    from pywats_client.services.api_client import WATSApiClient

    reader, writer = await asyncio.open_connection(sock=sock)
    api = WATSApiClient(config)
    tasks: set[asyncio.Task[None]] = set()

    async def upload(number: int, body: bytes) -> None:
        answer = await _outcome_of(api, body)
        _write_frame(writer, number, json.dumps(answer).encode())

    _write_frame(writer, 0, b"{}")
    try:
        while True:
            try:
                number, body = await _read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break  # the worker stopped or died: so does its helper, at once
            task = asyncio.create_task(upload(number, body))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await api.aclose()


async def _outcome_of(api: Any, body: bytes) -> dict[str, Any]:
    """The answer to one upload: what the worker needs to raise what the client raised."""
    try:
        await api.submit_report(body)
    except UnauthorizedError as exc:
        return {"outcome": "unauthorized", "message": str(exc)}
    except ServerUnavailableError as exc:
        return {
            "outcome": "unavailable",
            "message": str(exc),
            "status": exc.status_code,
            "retry_after": exc.retry_after,
        }
    except ReportRejectedError as exc:
        return {"outcome": "rejected", "message": str(exc), "status": exc.status_code}
    except Exception as exc:  # noqa: BLE001 - a bug: the worker counts an attempt, as in-process
        return {"outcome": "unexpected", "message": f"{type(exc).__name__}: {exc}"}
    return {"outcome": "accepted"}


def _error_of(answer: dict[str, Any]) -> PyWATSClientError | None:
    """The exception the helper's answer stands for (``None``: accepted)."""
    outcome, message = answer.get("outcome"), str(answer.get("message"))
    if outcome == "accepted":
        return None
    if outcome == "unauthorized":
        return UnauthorizedError(message)
    if outcome == "unavailable":
        return ServerUnavailableError(
            message, status_code=answer.get("status"), retry_after=answer.get("retry_after")
        )
    if outcome == "rejected":
        return ReportRejectedError(message, status_code=answer.get("status") or 400)
    return ServerUnavailableError(f"upload helper: unexpected {message}")


def _write_frame(writer: asyncio.StreamWriter, number: int, body: bytes) -> None:
    writer.write(_HEADER.pack(number, len(body)) + body)


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    number, size = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return number, await reader.readexactly(size)


# --- the worker's side -------------------------------------------------------------


class UploadHelper:
    """The worker's handle on its upload helper: starts, feeds, watches and stops it.

    ``mode`` is the config's ``upload_helper``: "always" starts it with the
    uploader, "auto" when a backlog shows; either way, until it is running
    (and whenever it is not), :meth:`usable` is false and the uploader sends
    reports itself.
    """

    def __init__(self, config: ClientConfig, mode: str) -> None:
        self._config = config
        self._mode = mode
        self._process: Any = None  # multiprocessing.Process of the running helper
        self._writer: asyncio.StreamWriter | None = None
        self._ready = False
        self._starting: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._last_number = 0
        self._window_start = 0.0
        self._window_uploads = 0
        self._hold_until = 0.0
        self._closing = False
        #: Uploads the helper answered (any outcome), over every helper started.
        self.answered = 0

    def __repr__(self) -> str:
        return f"UploadHelper({self._mode!r}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def usable(self) -> bool:
        return self._ready

    # --- when to run -----------------------------------------------------------------

    def note_upload(self) -> None:
        """An upload starts: an "auto" helper starts once the station is busy."""
        now = time.monotonic()
        if now - self._window_start > BUSY_WINDOW:
            self._window_start, self._window_uploads = now, 0
        self._window_uploads += 1
        if self._mode == "always" or self._window_uploads >= BUSY_UPLOADS:
            self.start_soon()

    def start_soon(self) -> None:
        """Start the helper in the background, unless it runs or recently failed."""
        starting = self._starting is not None and not self._starting.done()
        if self._process is not None or starting or self._closing:
            return
        if time.monotonic() < self._hold_until:
            return
        self._starting = asyncio.create_task(self._start(), name="pywats-upload-helper")

    async def note_idle(self, idle_for: float) -> None:
        """The uploader has had nothing to send for ``idle_for`` s: an "auto" helper stops."""
        if self._mode == "auto" and self._ready and idle_for >= IDLE_STOP and not self._waiting:
            log.info("upload helper (pid %s) stopped: no backlog", self.pid)
            await self.close()

    # --- uploads ---------------------------------------------------------------------

    async def submit(self, body: bytes) -> None:
        """Upload ``body`` through the helper; raises as :meth:`WATSApiClient.submit_report`.

        :class:`HelperGone` if the helper ended before it answered.
        """
        if not self._ready or self._writer is None:
            raise HelperGone("the upload helper is not running")
        self._last_number = self._last_number % 0xFFFFFFFF + 1
        number = self._last_number
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[number] = future
        hung_after = self._config.request_timeout + HUNG_MARGIN
        try:
            _write_frame(self._writer, number, body)
            answer = await asyncio.wait_for(future, hung_after)
        except asyncio.TimeoutError:
            self._kill(f"no answer to an upload within {hung_after:g} s (hung)")
            raise HelperGone("the upload helper hung") from None
        finally:
            self._waiting.pop(number, None)
        self.answered += 1
        error = _error_of(answer)
        if error is not None:
            raise error

    # --- the process -----------------------------------------------------------------

    async def _start(self) -> None:
        ours, theirs = socket.socketpair()
        self._process = multiprocessing.get_context("spawn").Process(
            target=helper_main,
            args=(theirs, self._config),
            name=f"pywats-upload-{self._config.instance_name}",
            daemon=True,
        )
        try:
            try:
                await asyncio.to_thread(self._process.start)
            finally:
                theirs.close()
            reader, self._writer = await asyncio.open_connection(sock=ours)
            number, _ = await asyncio.wait_for(_read_frame(reader), START_TIMEOUT)
            if number != 0:
                raise ConnectionError(f"its first frame was {number}, not its hello")
        except BaseException as exc:
            if self._writer is None:
                ours.close()
            code = await self._end_process()
            if not isinstance(exc, Exception):
                raise
            why = (
                "it ended before it was ready"
                if isinstance(exc, asyncio.IncompleteReadError)
                else f"{type(exc).__name__}: {exc}"
            )
            self._gave_up(f"it did not start ({why}); exit code {code}")
            return
        self._ready = True
        self._reader = asyncio.create_task(self._read_answers(reader), name="pywats-helper-answers")
        log.info("upload helper started (pid %s): this station's HTTP work runs there", self.pid)

    async def _read_answers(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                number, body = await _read_frame(reader)
                waiting = self._waiting.get(number)
                if waiting is not None and not waiting.done():
                    waiting.set_result(json.loads(body))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            reason = (
                "it closed its connection"
                if isinstance(exc, asyncio.IncompleteReadError)
                else f"its connection broke ({type(exc).__name__}: {exc})"
            )
        finally:
            self._ready = False
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(HelperGone("the upload helper ended"))
        if not self._closing:
            code = await self._end_process()
            self._gave_up(f"{reason}; exit code {code}")

    def _kill(self, why: str) -> None:
        """End a hung helper; its reader then sees the socket close and cleans up."""
        if self._process is not None and self._process.exitcode is None:
            log.warning("upload helper (pid %s) killed: %s", self.pid, why)
            self._process.kill()

    def _gave_up(self, why: str) -> None:
        self._hold_until = time.monotonic() + RESTART_HOLD
        log.warning(
            "upload helper of %r: %s. The worker uploads itself meanwhile (nothing is lost; "
            "a report that was in flight is sent again under the same id) and tries the "
            "helper again in %g s",
            self._config.instance_name,
            why,
            RESTART_HOLD,
        )

    async def _end_process(self) -> int | None:
        """Close the connection and make sure the process is gone; its exit code."""
        self._ready = False
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
        process, self._process = self._process, None
        if process is None or process.pid is None:  # never started
            return None
        await asyncio.to_thread(process.join, 5.0)
        if process.exitcode is None:  # it did not see its socket close: hung
            process.kill()
            await asyncio.to_thread(process.join, 5.0)
        code: int | None = process.exitcode
        process.close()
        return code

    async def close(self) -> None:
        """Stop the helper (answers still owed become :class:`HelperGone`)."""
        self._closing = True
        try:
            starting, self._starting = self._starting, None
            if starting is not None and not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
            await self._end_process()
            reader, self._reader = self._reader, None
            if reader is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        finally:
            self._closing = False
