"""The client end of the control channel: :class:`SupervisorControl`.

Each call opens one connection, proves the key (and checks that the
supervisor knows it too), sends one request, reads one reply, closes. Every
step has a deadline, so a hung supervisor makes a call fail with
:class:`ControlUnavailable` instead of freezing a GUI.
"""

from __future__ import annotations

import contextlib
import struct
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from pathlib import Path
from typing import Any, NoReturn

import psutil

from pywats_client.control import _endpoint as ep
from pywats_client.control._errors import (
    ControlRefused,
    ControlUnavailable,
    SupervisorNotRunning,
    UnknownInstance,
)
from pywats_client.control._protocol import (
    MAX_REPLY_BYTES,
    BadRequest,
    Command,
    Request,
    decode,
    encode,
)
from pywats_client.control._results import ControlResult, SupervisorInfo
from pywats_client.control._watchdog import Watchdog
from pywats_client.core.registry import Registry
from pywats_client.errors import ConfigError, FatalError

__all__ = ["DEFAULT_TIMEOUT", "DEFAULT_WAIT", "SupervisorControl"]

#: Seconds for connecting, the handshake and the reply (on top of ``wait``).
DEFAULT_TIMEOUT = 10.0
#: Seconds a command waits for the instances to get where it asked (0: do not wait).
DEFAULT_WAIT = 60.0

_watchdog = Watchdog()


class SupervisorControl:
    """Control the supervisor of one registry: start, stop, restart, pause, resume, reload.

    ``registry`` is the path of ``instances.toml`` (or a loaded :class:`Registry`);
    it only tells where the supervisor's state folder is. Every method is a
    short blocking call, safe from any thread; it raises
    :class:`SupervisorNotRunning`, :class:`UnknownInstance`,
    :class:`ControlRefused` or :class:`ControlUnavailable`.
    """

    def __init__(self, registry: Path | str | Registry, *, timeout: float = DEFAULT_TIMEOUT):
        if not isinstance(registry, Registry):
            registry = Registry.load(Path(registry), check_configs=False)
        self._registry = registry
        self.registry_path = registry.path
        self.state_dir = registry.state_dir
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"SupervisorControl({str(self.registry_path)!r})"

    # --- commands ----------------------------------------------------------------------

    def ping(self) -> SupervisorInfo:
        """The running supervisor's pid, start time and instance names."""
        return SupervisorInfo.from_dict(self._ask(Request("ping")))

    def is_running(self) -> bool:
        """True when a supervisor answers (never raises for a missing one)."""
        try:
            self.ping()
        except (SupervisorNotRunning, ControlUnavailable):
            return False
        return True

    def start(
        self, *names: str, all_instances: bool = False, wait: float = DEFAULT_WAIT
    ) -> ControlResult:
        """Start stopped instances (clears an operator stop); waits until they run."""
        return self._command("start", names, all_instances, wait)

    def stop(
        self, *names: str, all_instances: bool = False, wait: float = DEFAULT_WAIT
    ) -> ControlResult:
        """Stop instances gracefully; they stay stopped (even across restarts) until started."""
        return self._command("stop", names, all_instances, wait)

    def restart(
        self, *names: str, all_instances: bool = False, wait: float = DEFAULT_WAIT
    ) -> ControlResult:
        """Stop and start again; waits for the new worker (a new pid) to run."""
        return self._command("restart", names, all_instances, wait)

    def pause(
        self, *names: str, all_instances: bool = False, wait: float = DEFAULT_WAIT
    ) -> ControlResult:
        """Hold uploads (files are still watched, converted and queued); persisted."""
        return self._command("pause", names, all_instances, wait)

    def resume(
        self, *names: str, all_instances: bool = False, wait: float = DEFAULT_WAIT
    ) -> ControlResult:
        """Upload again, starting with what was queued while paused."""
        return self._command("resume", names, all_instances, wait)

    def reload(self) -> ControlResult:
        """Re-read the registry now; :class:`ControlRefused` says why if it is invalid."""
        return ControlResult.from_dict(self._ask(Request("reload")))

    def _command(
        self, command: Command, names: tuple[str, ...], every: bool, wait: float
    ) -> ControlResult:
        if every == bool(names):
            raise ValueError("give instance names or all_instances=True (not both)")
        request = Request(command, tuple(dict.fromkeys(names)), every, max(0.0, float(wait)))
        return ControlResult.from_dict(self._ask(request))

    # --- the exchange ------------------------------------------------------------------

    def _ask(self, request: Request) -> dict[str, Any]:
        endpoint = ep.read_endpoint(self.state_dir)
        if endpoint is None:
            self._no_endpoint()
        key = self._key()
        budget = self.timeout + request.wait
        try:
            conn = ep.connect(endpoint, self.timeout)
        except (FileNotFoundError, ConnectionRefusedError):
            raise SupervisorNotRunning(self.registry_path, _gone(endpoint)) from None
        except TimeoutError:
            raise ControlUnavailable(
                f"the supervisor (pid {endpoint.pid}) did not accept a control connection "
                f"within {self.timeout:g} s; it may be overloaded, try again"
            ) from None
        except OSError as exc:
            raise ControlRefused(
                f"cannot connect to the supervisor's control channel {endpoint.address}: "
                f"{exc.strerror or exc}; run as the user that runs the supervisor"
            ) from None
        watch = _watchdog.watch(conn, budget)
        try:
            return self._exchange(conn, key, request, endpoint)
        # RuntimeError: what CPython's Windows PipeConnection raises for a read
        # aborted by the watchdog's CancelIoEx ("shouldn't get here").
        except (OSError, EOFError, struct.error, RuntimeError) as exc:
            if watch.expired:
                raise ControlUnavailable(
                    f"the supervisor (pid {endpoint.pid}) did not answer within {budget:g} s; "
                    "it may be busy, try again"
                ) from None
            if endpoint.pid is not None and not psutil.pid_exists(endpoint.pid):
                raise SupervisorNotRunning(self.registry_path, "it exited") from None
            raise ControlUnavailable(
                f"the supervisor (pid {endpoint.pid}) closed the control connection "
                f"({type(exc).__name__}); it may be shutting down or busy, try again"
            ) from None
        finally:
            watch.finish()
            with contextlib.suppress(OSError):
                conn.close()

    def _no_endpoint(self) -> NoReturn:
        from pywats_client.supervisor import status_report

        try:
            supervisor = status_report(self._registry).supervisor
        except ConfigError:
            raise
        except FatalError as exc:  # this user may not read the state folder
            raise ControlRefused(str(exc)) from None
        if supervisor.running:
            raise ControlRefused(
                f"the supervisor (pid {supervisor.pid}) runs but published no control channel "
                f"({self.state_dir / ep.ADDR_NAME} is missing); see 'supervisor:' in "
                f"'pywats-client status --registry {self.registry_path}' and its log, "
                "then restart it"
            )
        raise SupervisorNotRunning(self.registry_path)

    def _key(self) -> bytes:
        path = self.state_dir / ep.KEY_NAME
        try:
            return ep.read_key(self.state_dir)
        except FileNotFoundError:
            raise SupervisorNotRunning(self.registry_path, f"no key file {path}") from None
        except PermissionError:
            raise ControlRefused(
                f"cannot read the control key {path}: permission denied; run this as the "
                "user that runs the supervisor (the key is readable by that user only)"
            ) from None
        except (OSError, ValueError) as exc:
            raise ControlRefused(
                f"cannot use the control key {path} ({exc}); restart the supervisor to "
                "write a new one"
            ) from None

    def _exchange(
        self, conn: Connection[Any, Any], key: bytes, request: Request, endpoint: ep.Endpoint
    ) -> dict[str, Any]:
        try:
            answer_challenge(conn, key)
            deliver_challenge(conn, key)
        except (AuthenticationError, AssertionError):
            raise ControlRefused(
                f"the control channel {endpoint.address} refused the key in "
                f"{self.state_dir / ep.KEY_NAME} (or is not a pywats supervisor); "
                "restart the supervisor so that it writes a fresh key"
            ) from None
        conn.send_bytes(encode(request.to_json()))
        try:
            reply = decode(conn.recv_bytes(MAX_REPLY_BYTES))
        except BadRequest as exc:
            raise ControlRefused(f"the supervisor sent an unreadable reply ({exc})") from None
        return self._result(reply, request)

    def _result(self, reply: Any, request: Request) -> dict[str, Any]:
        if not isinstance(reply, dict):
            raise ControlRefused("the supervisor sent a reply of the wrong shape")
        if reply.get("ok") is True and isinstance(reply.get("result"), dict):
            result: dict[str, Any] = reply["result"]
            return result
        error = reply.get("error")
        error = error if isinstance(error, dict) else {}
        kind, message = error.get("kind"), str(error.get("message") or "no reason given")
        if kind == "unknown-instance":
            names = [str(n) for n in error.get("names") or request.names]
            known = [str(n) for n in error.get("known") or []]
            raise UnknownInstance(names, known, self.registry_path)
        if kind == "busy":
            raise ControlUnavailable(f"{message}; try again")
        raise ControlRefused(f"the supervisor refused '{request.command}': {message}")


def _gone(endpoint: ep.Endpoint) -> str:
    if endpoint.pid is not None and not psutil.pid_exists(endpoint.pid):
        return f"pid {endpoint.pid} recorded in its control.addr is gone"
    return f"nothing listens on {endpoint.address}"
