"""Where the control channel listens and with which key: files in the state folder.

``<state_dir>/control.key``  32 random bytes, owner-only, new at every supervisor start.
``<state_dir>/control.addr`` JSON ``{"address", "family", "pid"}``, owner-only, written
once the listener is up (its presence means "a supervisor listens here").

POSIX uses a Unix socket, ``<state_dir>/control.sock`` when that path fits in
``sun_path`` (108 bytes on Linux, 104 on macOS, NUL included), else a short
name in the temp folder derived from a hash of the state folder. Windows
uses a named pipe named the same way. Never a TCP port.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import sys
import tempfile
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

from pywats_client._fsutil import atomic_write_bytes, atomic_write_text

__all__ = [
    "ADDR_NAME",
    "KEY_BYTES",
    "KEY_NAME",
    "MAX_SOCKET_PATH",
    "SOCKET_NAME",
    "Endpoint",
    "choose_address",
    "connect",
    "create_key",
    "read_endpoint",
    "read_key",
    "remove_stale_socket",
    "write_endpoint",
]

ADDR_NAME = "control.addr"
KEY_NAME = "control.key"
SOCKET_NAME = "control.sock"
KEY_BYTES = 32
#: Longest Unix socket path used (bytes): below every platform's sun_path limit.
MAX_SOCKET_PATH = 100

IS_WINDOWS = sys.platform == "win32"


@dataclass(frozen=True)
class Endpoint:
    address: str
    family: str  # "AF_UNIX" or "AF_PIPE"
    pid: int | None = None


def _digest(state_dir: Path) -> str:
    return hashlib.sha256(os.fsencode(state_dir.resolve())).hexdigest()[:16]


def choose_address(state_dir: Path) -> Endpoint:
    """The address the supervisor of ``state_dir`` listens on (not yet bound)."""
    if IS_WINDOWS:
        return Endpoint(rf"\\.\pipe\pywats-client-{_digest(state_dir)}", "AF_PIPE")
    path = state_dir / SOCKET_NAME
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        path = Path(tempfile.gettempdir()) / f"pywats-{_digest(state_dir)}.sock"
    return Endpoint(str(path), "AF_UNIX")


def remove_stale_socket(address: str) -> None:
    """Remove a socket left by a killed supervisor (the caller holds the supervisor lock).

    Anything that is not a socket is left alone and reported: it is not ours.
    """
    try:
        st = os.lstat(address)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(
            f"{address} exists and is not a socket; remove it so the control channel can start"
        )
    Path(address).unlink()


def create_key(state_dir: Path) -> bytes:
    """A new random key in ``control.key`` (owner-only); returns it."""
    key = os.urandom(KEY_BYTES)
    atomic_write_bytes(state_dir / KEY_NAME, key, sync_dir=False)
    return key


def write_endpoint(state_dir: Path, endpoint: Endpoint) -> None:
    document = {"address": endpoint.address, "family": endpoint.family, "pid": endpoint.pid}
    atomic_write_text(state_dir / ADDR_NAME, json.dumps(document) + "\n", sync_dir=False)


def read_endpoint(state_dir: Path) -> Endpoint | None:
    """The address a supervisor wrote, or None if there is none (or it is garbled)."""
    try:
        data: Any = json.loads((state_dir / ADDR_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    address, family, pid = data.get("address"), data.get("family"), data.get("pid")
    if not isinstance(address, str) or family not in ("AF_UNIX", "AF_PIPE"):
        return None
    return Endpoint(address, family, pid if isinstance(pid, int) else None)


def read_key(state_dir: Path) -> bytes:
    """The key in ``control.key``; OSError if unreadable, ValueError if not 32 bytes."""
    key = (state_dir / KEY_NAME).read_bytes()
    if len(key) != KEY_BYTES:
        raise ValueError(f"{state_dir / KEY_NAME} holds {len(key)} bytes, not {KEY_BYTES}")
    return key


def connect(endpoint: Endpoint, timeout: float) -> Connection[Any, Any]:
    """An unauthenticated connection to ``endpoint`` (the caller runs the handshake).

    OSError when nothing listens there (FileNotFoundError, ConnectionRefusedError)
    or ``socket.timeout`` when the listener does not accept in time.
    """
    if endpoint.family == "AF_PIPE":  # PipeClient waits for a busy pipe by itself
        return Client(endpoint.address, family="AF_PIPE")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(endpoint.address)
        sock.settimeout(None)
        return Connection(sock.detach())
    finally:
        with contextlib.suppress(OSError):
            sock.close()
