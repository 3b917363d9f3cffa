"""The control protocol: one JSON request, one JSON reply, per authenticated connection.

Bytes on the wire are ``multiprocessing.connection`` messages (a length
header, then the payload). Payloads are JSON, never pickle: the server never
unpickles anything a client sends, even after the client proved the key.

Request::

    {"protocol": 1, "command": "restart", "names": ["station-3"], "all": false, "wait": 60}

Reply: ``{"ok": true, "result": {...}}`` or
``{"ok": false, "error": {"kind": "unknown-instance" | "refused" | "bad-request" | "busy",
"message": "...", "names": [...], "known": [...]}}``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal, cast

__all__ = [
    "COMMANDS",
    "INSTANCE_COMMANDS",
    "MAX_REPLY_BYTES",
    "MAX_REQUEST_BYTES",
    "MAX_WAIT",
    "PROTOCOL",
    "BadRequest",
    "Command",
    "Request",
    "decode",
    "encode",
    "error_reply",
    "ok_reply",
    "parse_request",
]

PROTOCOL = 1
Command = Literal["ping", "start", "stop", "restart", "pause", "resume", "reload"]
INSTANCE_COMMANDS: tuple[Command, ...] = ("start", "stop", "restart", "pause", "resume")
COMMANDS: tuple[Command, ...] = ("ping", *INSTANCE_COMMANDS, "reload")
#: Longest request the server reads; anything longer is refused unread.
MAX_REQUEST_BYTES = 64 * 1024
#: Longest reply a client reads (hundreds of instances fit easily).
MAX_REPLY_BYTES = 8 * 1024 * 1024
#: Longest a request may ask the server to wait for the instances to settle.
MAX_WAIT = 600.0
MAX_NAMES = 1000
MAX_NAME_LENGTH = 200


class BadRequest(ValueError):
    """A request that is not valid JSON of the expected shape; the message says why."""


@dataclass(frozen=True)
class Request:
    command: Command
    names: tuple[str, ...] = ()
    all: bool = False
    wait: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": PROTOCOL,
            "command": self.command,
            "names": list(self.names),
            "all": self.all,
            "wait": self.wait,
        }


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), default=str).encode("utf-8")


def decode(payload: bytes) -> Any:
    """The JSON value in ``payload``; :class:`BadRequest` if it is not UTF-8 JSON."""
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadRequest(f"not UTF-8 JSON ({type(exc).__name__})") from None


def parse_request(value: Any) -> Request:
    """Check a decoded request; :class:`BadRequest` names the first problem."""
    if not isinstance(value, dict):
        raise BadRequest(f"a request is a JSON object, not {type(value).__name__}")
    protocol = value.get("protocol")
    if protocol != PROTOCOL:
        raise BadRequest(f"protocol {protocol!r} not supported (this supervisor speaks {PROTOCOL})")
    command = value.get("command")
    if command not in COMMANDS:
        raise BadRequest(f"unknown command {command!r}; known: {', '.join(COMMANDS)}")
    names = value.get("names", [])
    if not isinstance(names, list) or len(names) > MAX_NAMES:
        raise BadRequest(f"'names' must be a list of at most {MAX_NAMES} instance names")
    for name in names:
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH:
            raise BadRequest(f"'names' holds {name!r}: not an instance name")
    every = value.get("all", False)
    if not isinstance(every, bool):
        raise BadRequest("'all' must be true or false")
    wait = value.get("wait", 0)
    if (
        isinstance(wait, bool)
        or not isinstance(wait, (int, float))
        or not math.isfinite(wait)
        or not 0 <= wait <= MAX_WAIT
    ):
        raise BadRequest(f"'wait' must be a number of seconds from 0 to {MAX_WAIT:g}")
    if command in INSTANCE_COMMANDS:
        if every and names:
            raise BadRequest("give instance names or 'all', not both")
        if not every and not names:
            raise BadRequest(f"'{command}' needs instance names or 'all'")
    elif names or every:
        raise BadRequest(f"'{command}' takes no instance names")
    unique = tuple(dict.fromkeys(cast(list[str], names)))
    return Request(cast(Command, command), unique, every, float(wait))


def ok_reply(result: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "result": result}


def error_reply(kind: str, message: str, **details: Any) -> dict[str, Any]:
    return {"ok": False, "error": {"kind": kind, "message": message, **details}}
