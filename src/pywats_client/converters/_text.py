"""Bounded file reading and text decoding for converters.

Testers write text in whatever encoding their PC uses: UTF-8 (with or without
a BOM), UTF-16 from some Windows tools, and cp1252 from older ones. Decoding
tries what the bytes say (a BOM), then UTF-8, then cp1252, so a degree sign or
an umlaut from an old station is read right instead of failing the file.
"""

from __future__ import annotations

import codecs
import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path

__all__ = [
    "FileTooLargeError",
    "decode_head",
    "decode_text",
    "file_mtime",
    "read_bounded",
    "read_head",
    "served_from",
]

_BLOCK = 1 << 20

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


class FileTooLargeError(ValueError):
    """The file is larger than the limit the caller allows."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"file is {size} bytes, larger than the limit of {limit} bytes")
        self.size = size
        self.limit = limit


#: The file being converted on this thread and the bytes already read of it.
_snapshot: ContextVar[tuple[Path, bytes] | None] = ContextVar("pywats_snapshot", default=None)


@contextlib.contextmanager
def served_from(path: Path, data: bytes) -> Iterator[None]:
    """Within the block, reads of ``path`` on this thread return ``data``.

    The manager reads a small result file once, hashes those bytes and lets
    ``can_convert`` and ``convert`` read the same bytes: the recorded hash is
    of exactly what was converted, and a file costs one read instead of three.
    """
    token = _snapshot.set((path, data))
    try:
        yield
    finally:
        _snapshot.reset(token)


def _served(path: Path) -> bytes | None:
    snapshot = _snapshot.get()
    if snapshot is None or not (snapshot[0] is path or snapshot[0] == path):
        return None
    return snapshot[1]


def read_head(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of the file."""
    data = _served(path)
    if data is not None:
        return data if size < 0 else data[:size]
    with path.open("rb") as handle:  # buffered: its read(size) returns size bytes unless EOF
        return handle.read(size)


def read_bounded(path: Path, limit: int) -> bytes:
    """The file's bytes; :class:`FileTooLargeError` if it holds more than ``limit``.

    Reads in blocks and stops one byte past ``limit``, so a file that grows
    while being read (or lies about its size) never makes us hold more than
    the limit, and memory follows the file's real size, not the limit.
    """
    data = _served(path)
    if data is not None:
        if len(data) > limit:
            raise FileTooLargeError(len(data), limit)
        return data
    blocks: list[bytes] = []
    total = 0
    with path.open("rb", buffering=0) as handle:  # read in our blocks: no buffer to set up
        while total <= limit:
            block = handle.read(min(_BLOCK, limit + 1 - total))
            if not block:
                break
            blocks.append(block)
            total += len(block)
    if total > limit:
        raise FileTooLargeError(max(total, _size_or(path, total)), limit)
    return b"".join(blocks)


def _size_or(path: Path, default: int) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return default


def decode_text(data: bytes, encoding: str | None = None) -> str:
    """Text of ``data``: in ``encoding`` if given, else detected (BOM, UTF-8, cp1252).

    Raises ``UnicodeDecodeError`` when ``encoding`` is given and does not fit,
    ``LookupError`` when it names no codec. Detection never fails: bytes that
    are neither UTF-8 nor cp1252 are read as Latin-1.
    """
    if encoding:
        text = data.decode(encoding)
        return text[1:] if text.startswith("\ufeff") else text
    return _guess(data, bytes.decode)


def decode_head(data: bytes, encoding: str | None = None) -> str:
    """Text of the first bytes of a file, decoded like :func:`decode_text`; never raises.

    ``data`` may end in the middle of a character (it is a cut, not the whole
    file): that partial character is dropped instead of making the UTF-8 guess
    fail and the head read as cp1252. A BOM is stripped, so a file saved by
    Notepad ("UTF-8 with BOM", "Unicode") starts with its first real character.
    """
    if encoding:
        try:
            text = _decode_prefix(data, encoding, "strict")
        except LookupError:
            encoding = None  # reported by read_text; a peek just detects
        except UnicodeDecodeError:
            text = _decode_prefix(data, encoding, "replace")
        if encoding:
            return text[1:] if text.startswith("\ufeff") else text
    return _guess(data, _decode_prefix)


def _guess(data: bytes, decode: Callable[[bytes, str, str], str]) -> str:
    """A BOM's encoding, else UTF-8, else cp1252, else Latin-1 (which never fails)."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return decode(data[len(bom) :], name, "replace")
    try:
        return decode(data, "utf-8", "strict")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _decode_prefix(data: bytes, encoding: str, errors: str) -> str:
    """``data`` decoded, leaving out an incomplete character at its end."""
    return codecs.getincrementaldecoder(encoding)(errors).decode(data, final=False)


def file_mtime(path: Path) -> datetime:
    """When the tester wrote the file: the start time of a result that states none."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime).astimezone()
    except (OSError, OverflowError, ValueError):
        return datetime.now().astimezone()
