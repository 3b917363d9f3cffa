"""The upload helper: a child process of the worker that does the HTTP part of uploads.

Why a process: intake and uploads in one worker share one interpreter lock,
and every system call of one hands it to the other; on a busy station the
HTTP client took about half of it (docs/benchmarks.md). In a helper process
that work runs on the other core.

Nothing about the queue moves: the worker still claims each report, decides
retries and parks, and removes accepted reports; the helper only POSTs the
bytes it is sent and answers with the outcome, classified exactly as
:class:`WATSApiClient` classifies it. So if the helper dies or hangs, the
worker sends its unanswered reports itself (same id: the server replaces,
never doubles), and if the worker dies, the helper sees its socket close and
exits at once.

``upload_helper = "auto"`` starts the helper only once the station is busy
(:data:`BUSY_UPLOADS` uploads within :data:`BUSY_WINDOW` seconds) and stops
it after :data:`IDLE_STOP` idle seconds, so a quiet station keeps one process;
and only with a core to spare: "auto" helpers of all stations of the PC take
one of :func:`helper_slots` slots (OS file locks in :data:`SLOT_DIR`). With
every core busy, a helper only adds a process to share them (measured:
several busy stations on 2 cores gained nothing, docs/benchmarks.md).

Frames both ways are ``[u32 number][u32 length][bytes]``: the worker sends a
WSJF body, the helper answers with a JSON outcome under the same number.
Number 0 from the helper is a beat: once when it is ready, then every
:data:`BEAT_INTERVAL` seconds, so a hung helper is told apart from a slow server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import queue
import signal
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import filelock
from platformdirs import user_cache_path

from pywats_client._fsutil import ensure_private_dir
from pywats_client._logging import APP_NAME, redact, register_secret
from pywats_client._pidlock import exclusive_lock
from pywats_client.core.config import ClientConfig
from pywats_client.errors import (
    PyWATSClientError,
    ReportRejectedError,
    ServerUnavailableError,
    UnauthorizedError,
)
from pywats_client.services.api_client import BlockingSubmitter

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
#: Seconds between the helper's beats, and without one after which it is killed as hung.
BEAT_INTERVAL = 1.0
HUNG_AFTER = 15.0
#: Seconds the helper has to exit after its socket closed before it is killed.
EXIT_GRACE = 5.0
#: Seconds beyond 4 x ``request_timeout`` (httpx times connect, pool, write and read
#: apart) after which an unanswered upload is sent from the worker and the helper,
#: beating but having lost it, is killed.
ANSWER_GRACE = 30.0
#: Where the slots of "auto" helpers are: the user's own cache folder, owner-only (in a
#: shared temp folder another user could plant links where the locks are created).
SLOT_DIR = user_cache_path(APP_NAME, appauthor=False) / "upload-helper-slots"
#: Seconds before a busy station looks for a free slot again.
SLOT_RETRY = 10.0

_HEADER = struct.Struct("!II")


class HelperGone(Exception):
    """The helper ended (or was stopped) before answering: send the report another way."""


# --- the helper process ------------------------------------------------------------


def helper_main(sock: socket.socket, config: ClientConfig) -> None:
    """Entry point of the helper process (spawned: importable at top level)."""
    # Its life is its socket's: Ctrl+C (Ctrl+Break) reaches every process of the
    # console; the supervisor decides, and the worker's stop closes the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, signal.SIG_IGN)
    register_secret(config.effective_token().get_secret_value())
    try:
        _serve(sock, config)
    except BaseException as exc:  # noqa: BLE001 - said on stderr; the worker logs the exit
        sys.stderr.write(
            redact(f"upload helper of {config.instance_name!r}: {type(exc).__name__}: {exc}\n")
        )
        sys.stderr.flush()
        os._exit(1)
    # The worker stopped (it waited for its uploads first) or died (it sends whatever
    # was in flight again when it restarts): no request here is worth waiting for.
    os._exit(0)


def _serve(sock: socket.socket, config: ClientConfig) -> None:
    """Threads with blocking HTTP clients, not an event loop: the helper only waits
    for the server, and blocking httpx costs less CPU per request."""
    sock.setblocking(True)
    # One client per upload thread, all built now: unusable TLS settings (a CA file
    # gone since the worker started) fail the start, which the worker sees, never an
    # upload, whose answer would be lost.
    submitters: queue.SimpleQueue[BlockingSubmitter] = queue.SimpleQueue()
    for _ in range(config.max_concurrent_uploads):
        submitters.put(BlockingSubmitter(config))
    send_lock = threading.Lock()

    def send(number: int, body: bytes) -> None:
        with send_lock:
            sock.sendall(_HEADER.pack(number, len(body)) + body)

    def answer(number: int, body: bytes) -> None:
        submitter = submitters.get()  # never waits: as many clients as threads
        try:
            outcome = _outcome_of(submitter, body)
        finally:
            submitters.put(submitter)
        send(number, json.dumps(outcome).encode())

    def beat() -> None:
        with contextlib.suppress(OSError):
            while True:
                send(0, b"")
                time.sleep(BEAT_INTERVAL)

    threading.Thread(target=beat, name="pywats-upload-beat", daemon=True).start()
    pool = ThreadPoolExecutor(config.max_concurrent_uploads, thread_name_prefix="pywats-upload")
    while True:
        try:
            number, size = _HEADER.unpack(_receive(sock, _HEADER.size))
            body = _receive(sock, size)
        except (EOFError, OSError):
            return
        pool.submit(answer, number, body)


def _receive(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("the worker closed the connection")
        data += chunk
    return bytes(data)


def _outcome_of(submitter: Any, body: bytes) -> dict[str, Any]:
    """The answer to one upload: what the worker needs to raise what the client raised."""
    try:
        submitter.submit(body)
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


def helper_slots() -> int:
    """How many "auto" helpers may run on this PC at once: its cores but one."""
    return max(1, (os.cpu_count() or 2) - 1)


def _take_slot() -> filelock.FileLock | None:
    """A free slot, held until released (the OS frees it if the worker dies)."""
    try:
        ensure_private_dir(SLOT_DIR)
    except OSError:
        return None
    for number in range(helper_slots()):
        lock = exclusive_lock(SLOT_DIR / f"slot-{number}.lock")
        try:
            lock.acquire()
        except (filelock.Timeout, OSError):
            continue
        return lock
    return None


def _spawn(process: Any, theirs: socket.socket) -> None:
    """Start the helper, then close the worker's copy of its socket, in that order even
    if the caller was cancelled: on POSIX, spawn hands the socket's descriptor over
    during the start (on Windows multiprocessing keeps a duplicate until the child
    fetches it; a child that dies before that is noticed at START_TIMEOUT)."""
    try:
        process.start()
    finally:
        theirs.close()


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    number, size = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return number, await reader.readexactly(size)


# --- the worker's side -------------------------------------------------------------


class UploadHelper:
    """The worker's handle on its upload helper: starts, feeds, watches and stops it.

    The config's ``upload_helper`` says when: "always" from :meth:`uploader_started`,
    "auto" once the station is busy; until it is running (and whenever it is
    not), :attr:`usable` is false and the uploader sends reports itself.
    """

    def __init__(self, config: ClientConfig) -> None:
        self._config = config
        self._mode = config.upload_helper
        self._process: Any = None  # multiprocessing.Process, from spawn until joined
        self._slot: filelock.FileLock | None = None  # held from spawn until joined ("auto")
        self._writer: asyncio.StreamWriter | None = None
        self._ready = False
        self._starting: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []  # answer reader, hang watch
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._last_number = 0
        self._last_heard = 0.0
        self._hold_until = 0.0
        self._window_start = 0.0
        self._window_uploads = 0
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

    def uploader_started(self) -> None:
        """The uploader runs: an "always" helper starts now, before the first upload."""
        if self._mode == "always":
            self.start_soon()

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
            log.info("upload helper (pid %s) stopped: no uploads for %.0f s", self.pid, idle_for)
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
        deadline = 4 * self._config.request_timeout + ANSWER_GRACE
        try:
            self._writer.write(_HEADER.pack(number, len(body)) + body)
            answer = await asyncio.wait_for(future, deadline)
        except asyncio.TimeoutError:
            self._kill(f"no answer to an upload within {deadline:g} s")
            raise HelperGone("the upload helper lost an upload") from None
        finally:
            self._waiting.pop(number, None)
        self.answered += 1
        error = _error_of(answer)
        if error is not None:
            raise error

    # --- the process -----------------------------------------------------------------

    async def _start(self) -> None:
        if self._mode == "auto":
            self._slot = _take_slot()  # a lock of a local file: quick, so on the loop
            if self._slot is None:  # every spare core has a helper: look again later
                self._hold_until = time.monotonic() + SLOT_RETRY
                return
        ours: socket.socket | None = None
        spawned: asyncio.Future[None] | None = None
        try:
            ours, theirs = socket.socketpair()
            process = self._process = multiprocessing.get_context("spawn").Process(
                target=helper_main,
                args=(theirs, self._config),
                name=f"pywats-upload-{self._config.instance_name}",
                daemon=True,
            )
            spawned = asyncio.ensure_future(asyncio.to_thread(_spawn, process, theirs))
            await asyncio.shield(spawned)
            reader, self._writer = await asyncio.open_connection(sock=ours)
            number, _ = await asyncio.wait_for(_read_frame(reader), START_TIMEOUT)
            if number != 0:
                raise ConnectionError(f"its first frame was {number}, not its beat")
        except BaseException as exc:
            self._hold_until = time.monotonic() + RESTART_HOLD
            if self._writer is None and ours is not None:
                ours.close()
            if spawned is not None and not spawned.done():  # cancelled while spawning:
                await asyncio.wait([spawned])  # the join below needs its pid
            code = await self._end_process()
            if not isinstance(exc, Exception):
                raise
            if isinstance(exc, asyncio.IncompleteReadError):
                why = "it ended before it was ready"
            elif isinstance(exc, asyncio.TimeoutError):
                why = f"it was not ready within {START_TIMEOUT:g} s"
            else:
                why = f"{type(exc).__name__}: {exc}"
            self._gave_up(f"it did not start ({why}); exit code {code}")
            return
        self._ready = True
        self._last_heard = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._read_answers(reader), name="pywats-helper-answers"),
            asyncio.create_task(self._watch_beats(), name="pywats-helper-beats"),
        ]
        log.info("upload helper started (pid %s): this station's HTTP work runs there", self.pid)

    async def _read_answers(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                number, body = await _read_frame(reader)
                self._last_heard = time.monotonic()
                waiting = self._waiting.get(number)
                if waiting is not None and not waiting.done():
                    waiting.set_result(json.loads(body))
        except Exception as exc:  # noqa: BLE001 - any end of the connection ends the helper
            reason = (
                "it closed its connection"
                if isinstance(exc, asyncio.IncompleteReadError)
                else f"its connection broke ({type(exc).__name__}: {exc})"
            )
        finally:
            self._ready = False
            if not self._closing:
                self._hold_until = time.monotonic() + RESTART_HOLD
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(HelperGone("the upload helper ended"))
        if not self._closing:
            code = await self._end_process()
            self._gave_up(f"{reason}; exit code {code}")

    async def _watch_beats(self) -> None:
        """Kill a helper that stopped beating (hung): its reader then cleans up."""
        while self._ready:
            await asyncio.sleep(BEAT_INTERVAL)
            silent = time.monotonic() - self._last_heard
            if self._ready and silent > HUNG_AFTER:
                self._kill(f"silent for {silent:.0f} s (hung)")
                return

    def _kill(self, why: str) -> None:
        """End a helper that failed us; its reader then sees the socket close and cleans up."""
        if self._ready and self._process is not None:
            log.warning("upload helper (pid %s) killed: %s", self.pid, why)
            self._process.kill()

    def _gave_up(self, why: str) -> None:
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
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        # forgotten at once (a restart is held off meanwhile), so no one else joins it
        process, self._process = self._process, None
        try:
            return await self._join(process)
        finally:
            slot, self._slot = self._slot, None
            if slot is not None:
                slot.release()

    async def _join(self, process: Any) -> int | None:
        if process is None or process.pid is None:  # never started
            return None
        await asyncio.to_thread(process.join, EXIT_GRACE)
        if process.exitcode is None:  # it did not see its socket close: hung
            log.warning(
                "upload helper (pid %s) did not end within %g s of its connection closing; killed",
                process.pid,
                EXIT_GRACE,
            )
            process.kill()
            await asyncio.to_thread(process.join, EXIT_GRACE)
        code: int | None = process.exitcode
        with contextlib.suppress(ValueError):  # still running even after a kill: leave it
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
            tasks, self._tasks = self._tasks, []
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._closing = False
