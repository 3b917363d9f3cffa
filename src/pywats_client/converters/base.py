"""``BaseConverter``: the plugin API from the seed README, plus the helpers it implies.

A converter turns one result file into one or more WATS reports::

    class MyConverter(BaseConverter):
        name = "My Test System Converter"
        description = "Converts .test files to WATS format"

        def can_convert(self, file_path: Path) -> bool:
            return file_path.suffix == ".test"

        def convert(self, file_path: Path) -> UUTReport:
            data = self.parse_test_file(file_path)
            ...

``convert`` may return a ``UUTReport``/``UURReport``, a WSJF-shaped dict, or a
list of them (a file holding several units). It may raise anything: the
manager turns every exception into a ``ConversionError`` naming the converter
and the file, and the source goes to the error folder with the traceback.
"""

from __future__ import annotations

import abc
import fnmatch
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias

from pywats_client.converters._steps import build_step
from pywats_client.converters._testfile import parse_test_data
from pywats_client.converters._text import (
    FileTooLargeError,
    decode_head,
    decode_text,
    file_mtime,
    read_bounded,
    read_head,
)
from pywats_client.errors import ConversionError
from pywats_client.models import Step, UURReport, UUTReport

__all__ = ["DEFAULT_MAX_FILE_SIZE", "BaseConverter", "ConverterOutput", "ReportLike"]

#: Size limit of a converter used outside a manager (the config's default).
DEFAULT_MAX_FILE_SIZE = 64 * 1024 * 1024

ReportLike: TypeAlias = UUTReport | UURReport | Mapping[str, Any]
#: What ``convert`` may return: one report or a list of them.
ConverterOutput: TypeAlias = ReportLike | Sequence[ReportLike]


class BaseConverter(abc.ABC):
    """Base class of every converter (built-in, plugin file or entry point).

    Class attributes a subclass may set:

    * ``name`` - unique name; keys the converter's settings in the config's
      ``converters`` table and is recorded with every report it makes.
    * ``description`` - one line for ``pywats-client converters``.
    * ``priority`` - when several converters accept a file, the highest wins
      (then the highest confidence from ``can_convert``, then plugins before
      built-ins).
    * ``patterns`` - file-name globs (``"*.csv"``) the converter is offered;
      empty offers every file. ``converters.<name>.patterns`` in the config
      replaces them (on the instance, so the default ``can_convert`` sees it).
    * ``max_size`` - largest file in bytes this converter reads (``None``: the
      config's ``max_file_size``); ``converters.<name>.max_size`` overrides it.

    ``settings`` holds the converter's table from the config (read-only).
    A converter object is shared by every file of the instance: keep per-file
    state in local variables, not on ``self``.
    """

    name: str = ""
    description: str = ""
    priority: int = 0
    patterns: Sequence[str] = ()
    max_size: int | None = None

    # Set by the manager when it loads the converter; class defaults make a
    # converter usable on its own (in a test) and survive an __init__ that
    # does not call super().__init__().
    settings: Mapping[str, Any] = MappingProxyType({})
    text_encoding: str | None = None
    max_file_size: int = DEFAULT_MAX_FILE_SIZE

    # --- the plugin API ---------------------------------------------------

    def can_convert(self, file_path: Path) -> bool | float:
        """Whether this converter takes ``file_path``: a bool or a confidence 0..1.

        The default accepts every file matching ``patterns`` (and nothing when
        there are none), so a converter that only declares ``patterns`` works.
        Look at the file name or the first bytes (:meth:`peek`), not the whole
        file: every converter is asked about every file.
        """
        return bool(self.patterns) and self.matches_patterns(file_path, self.patterns)

    @abc.abstractmethod
    def convert(self, file_path: Path) -> ConverterOutput:
        """The report(s) in ``file_path``."""

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Take this converter's settings from the config.

        Called once when the converter is loaded. Override it to check the
        settings and raise ``ValueError`` naming the key when one is wrong:
        the converter is then not used and the problem is reported.
        """
        self.settings = MappingProxyType(dict(settings))

    # --- helpers ----------------------------------------------------------

    @staticmethod
    def matches_patterns(file_path: Path, patterns: Sequence[str]) -> bool:
        """Whether the file name matches any glob in ``patterns`` (case-insensitive)."""
        name = file_path.name.lower()
        return any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in patterns)

    @property
    def size_limit(self) -> int:
        """Largest file this converter reads, in bytes."""
        configured = self.settings.get("max_size", self.max_size)
        if isinstance(configured, int) and not isinstance(configured, bool) and configured > 0:
            return min(configured, self.max_file_size)
        return self.max_file_size

    def error(self, message: str, file_path: Path) -> ConversionError:
        """A ``ConversionError`` for ``file_path`` naming this converter (to raise)."""
        return ConversionError(
            f"{file_path.name}: {message}", converter=self.name or None, file=file_path
        )

    def peek(self, file_path: Path, size: int = 8192) -> bytes:
        """The first ``size`` bytes of the file (empty if it cannot be read)."""
        try:
            return read_head(file_path, size)
        except OSError:
            return b""

    def peek_text(self, file_path: Path, size: int = 8192) -> str:
        """The first ``size`` bytes as text, decoded like :meth:`read_text`; never raises.

        For ``can_convert``: ``self.peek_text(path).startswith("# BENCHTEST")``
        also holds for a file saved with a BOM (UTF-8 "with signature", or
        UTF-16 from Windows tools), which ``peek(path).startswith(b"...")``
        does not see past. The BOM is stripped; a character cut at ``size`` is
        left out.
        """
        return decode_head(self.peek(file_path, size), self.text_encoding)

    def read_bytes(self, file_path: Path) -> bytes:
        """The whole file, refused with a clear reason when over :attr:`size_limit`."""
        try:
            return read_bounded(file_path, self.size_limit)
        except FileTooLargeError as exc:
            raise self.error(
                f"{exc}; refused before parsing (raise max_file_size or this converter's "
                "max_size setting if the file is genuine)",
                file_path,
            ) from None
        except OSError as exc:
            raise self.error(f"cannot be read ({exc.strerror or exc})", file_path) from None

    def read_text(self, file_path: Path) -> str:
        """The file as text: in the configured ``text_encoding``, else detected.

        Detection honours a BOM (UTF-8/16/32), then tries UTF-8, then cp1252.
        """
        data = self.read_bytes(file_path)
        try:
            return decode_text(data, self.text_encoding)
        except LookupError:
            raise self.error(
                f"text_encoding {self.text_encoding!r} is not a known encoding; fix it in "
                "the config (e.g. utf-8, cp1252) or remove it to detect",
                file_path,
            ) from None
        except UnicodeDecodeError as exc:
            raise self.error(
                f"is not valid {self.text_encoding} text (byte {exc.start}); fix text_encoding "
                "in the config or remove it to detect the encoding",
                file_path,
            ) from None

    def parse_test_file(self, file_path: Path) -> dict[str, Any]:
        """Read the simple key/value (or JSON) result format the seed example uses.

        Returns a dict with ``part_number``, ``serial_number``, ``revision``,
        ``passed`` (bool), ``start_time`` (datetime; the file's modification
        time when the file has none), ``steps`` (dicts for :meth:`create_step`)
        and every other header key under its lower-case name. The format is
        described in ``docs/converters.md``.
        """
        text = self.read_text(file_path)
        try:
            return parse_test_data(text, default_start=file_mtime(file_path))
        except ValueError as exc:
            raise self.error(str(exc), file_path) from None

    def create_step(self, step: Mapping[str, Any] | Step) -> Step:
        """A typed WSJF step from a plain dict (``report.steps.append(...)`` takes it).

        ``{"name", "value": 5.02, "unit", "low", "high"}`` -> numeric limit step
        (comparison from the limits, or ``comp``); ``"measurements": [...]`` ->
        several numeric measurements; ``"value": "text"`` with an optional
        ``"limit"`` -> string step; ``"passed": True/False`` -> pass/fail step;
        ``"steps": [...]`` -> a sequence holding them; otherwise an action step.
        Any step may have ``status``, ``time``, ``text``, ``group``,
        ``error_code`` and ``error_message``. Raises ``ValueError`` naming the
        step when the dict does not make sense.
        """
        return build_step(step)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
