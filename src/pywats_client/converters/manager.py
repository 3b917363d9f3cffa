"""``ConverterManager``: find the converters, pick one per file, run it safely.

Discovery: the built-ins, installed packages (entry-point group
``pywats_client.converters``) and every ``*.py`` in the instance's
``converter_path``. A plugin that fails to load is reported, never fatal.

Selection: a converter is offered a file when its name matches the
converter's patterns (``converters.<name>.patterns`` in the config, else the
class's); it accepts with ``can_convert`` returning True or a confidence. The
highest ``priority`` wins, then the highest confidence, then plugin files
before entry points before built-ins (so a station can override a built-in),
then load order.

Conversion never raises anything but ``ConversionError``: a converter's own
exception becomes its ``__cause__``, so the intake can write the traceback
next to the file in the error folder.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import logging
import math
import stat as stat_module
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from pywats_client.converters._loader import (
    Discovered,
    LoadProblem,
    discover_entry_points,
    discover_plugin_dir,
)
from pywats_client.converters._results import OutputError, ReportDefaults, normalize_output
from pywats_client.converters._text import FileTooLargeError, read_bounded, served_from
from pywats_client.converters.base import DEFAULT_MAX_FILE_SIZE, BaseConverter
from pywats_client.core._validation import describe_validation_error
from pywats_client.errors import ConversionError

if TYPE_CHECKING:
    from pywats_client.core.config import ClientConfig

__all__ = [
    "Candidate",
    "Conversion",
    "ConverterInfo",
    "ConverterManager",
    "converter_running_in",
]

log = logging.getLogger(__name__)

#: Keys of ``config.converters[name]`` the manager reads itself.
_FRAMEWORK_KEYS = ("enabled", "patterns", "priority", "max_size")
_ORIGIN_RANK = {"plugin": 2, "entry-point": 1, "built-in": 0}
#: Start of a candidate's reason when its patterns do not match the file name.
_NO_MATCH = "name does not match"


@dataclass(frozen=True)
class ConverterInfo:
    """One loaded converter, for listings (``pywats-client converters``, the GUI)."""

    name: str
    description: str
    origin: str
    priority: int = 0
    patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """How one converter answered for one file (``accepted`` with its confidence or why not)."""

    name: str
    origin: str
    accepted: bool
    confidence: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class Conversion:
    """The result of converting one source file.

    ``reports`` are WSJF dicts, validated, each with an ``id`` (derived from
    the instance, ``source_sha256`` and its index when the converter set none)
    and with the station's ``machineName``/``location``/``purpose`` filled in
    where the converter left them out.
    """

    source: Path
    converter: str
    source_sha256: str
    reports: list[dict[str, Any]] = field(default_factory=list)
    #: How many bytes ``source_sha256`` covers: the file as it was read.
    source_size: int | None = None


@dataclass
class _Entry:
    converter: BaseConverter
    info: ConverterInfo
    rank: int
    order: int


#: Files up to this size are read once, and converters read those bytes
#: (see :func:`served_from`); larger ones are hashed in blocks and read again.
READ_ONCE_LIMIT = 4 * 1024 * 1024


def _sha256(path: Path) -> tuple[str, int]:
    """The file's sha256 and how many bytes it covers."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _read_once(
    path: Path, size: int, limit: int
) -> tuple[tuple[str, int], contextlib.AbstractContextManager[None]]:
    """The file's sha256 and size as hashed, and a context in which converters read them."""
    if size > READ_ONCE_LIMIT:
        return _sha256(path), contextlib.nullcontext()
    try:
        data = read_bounded(path, min(limit, READ_ONCE_LIMIT))
    except FileTooLargeError:  # grew since the size check: hashed in blocks, read again
        return _sha256(path), contextlib.nullcontext()
    return (hashlib.sha256(data).hexdigest(), len(data)), served_from(path, data)


def _confidence(answer: Any) -> float | None:
    """``can_convert``'s answer as 0..1, or ``None`` when it is not a bool or number."""
    if isinstance(answer, bool) or answer is None:
        return 1.0 if answer else 0.0
    if isinstance(answer, (int, float)) and math.isfinite(answer):
        return min(max(float(answer), 0.0), 1.0)
    return None


class ConverterManager:
    """The converters of one instance and the one entry point to run them."""

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        plugin_dirs: Sequence[Path] | None = None,
        builtins: bool = True,
        entry_points: bool = True,
    ) -> None:
        self._config = config
        if plugin_dirs is None:
            plugin_dirs = [config.converter_dir] if config is not None else []
        self._plugin_dirs = [Path(p) for p in plugin_dirs]
        self._use_builtins = builtins
        self._use_entry_points = entry_points
        self._entries: list[_Entry] = []
        self._problems: list[LoadProblem] = []
        self._loaded = False
        self._lock = threading.Lock()
        #: Converters whose raising ``can_convert`` was logged since the last load.
        self._logged_can_convert: set[str] = set()
        self._logged_lock = threading.Lock()
        if config is not None:
            self._defaults = ReportDefaults(
                config.instance_name, config.machine_name, config.location, config.purpose
            )
            self._settings: Mapping[str, Mapping[str, Any]] = config.converters
            self._text_encoding = config.text_encoding
            self._max_file_size = config.max_file_size
        else:
            self._defaults = ReportDefaults("pywats-station")
            self._settings = {}
            self._text_encoding = None
            self._max_file_size = DEFAULT_MAX_FILE_SIZE

    @classmethod
    def from_dirs(
        cls, dirs: Iterable[Path], config: ClientConfig | None = None, **kwargs: Any
    ) -> ConverterManager:
        """A manager loading plugins from ``dirs`` instead of ``config.converter_dir``."""
        return cls(config, plugin_dirs=list(dirs), **kwargs)

    # --- loading --------------------------------------------------------

    def load(self) -> list[LoadProblem]:
        """(Re)discover every converter; returns what could not be loaded. Never raises."""
        with self._lock:
            return self._load_locked()

    def _load_locked(self) -> list[LoadProblem]:
        discovered: list[Discovered] = []
        problems: list[LoadProblem] = []
        if self._use_builtins:
            from pywats_client.converters.builtin import BUILTIN_CONVERTERS

            discovered.extend(Discovered(cls, "built-in") for cls in BUILTIN_CONVERTERS)
        sources: list[tuple[str, Callable[[], tuple[list[Discovered], list[LoadProblem]]]]] = []
        if self._use_entry_points:
            sources.append(("entry-point", discover_entry_points))
        for folder in self._plugin_dirs:
            sources.append((f"plugin:{folder}", functools.partial(discover_plugin_dir, folder)))
        for origin, discover in sources:
            try:
                found, failed = discover()
            except Exception as exc:  # noqa: BLE001 - e.g. an unreadable folder: report it
                problems.append(LoadProblem(origin, f"cannot be searched: {exc}"))
                continue
            discovered.extend(found)
            problems.extend(failed)
        entries, names = self._instantiate(discovered, problems)
        config = self._config
        if (
            config is not None
            and config.converter_dir
            != config.resolve_path(type(config).model_fields["converter_path"].default)
            and not config.converter_dir.exists()
        ):
            # only a path someone chose: stations without plugins need no folder
            problems.append(
                LoadProblem(
                    "config",
                    f"converter_path: {config.converter_dir} does not exist, so no plugin "
                    "converter was loaded from it; fix the path (relative paths start at the "
                    "config file's folder) or create the folder",
                )
            )
        for name in self._settings:
            if name not in names and not name.startswith("//"):
                close = difflib.get_close_matches(name, names, n=1)
                fix = f"did you mean {close[0]!r}? Fix" if close else "fix"
                problems.append(
                    LoadProblem(
                        "config",
                        f"converters.{name}: no converter of that name was found (found: "
                        f"{', '.join(sorted(names))}); {fix} the name or remove the settings",
                    )
                )
        self._entries = entries
        self._problems = problems
        self._loaded = True
        with self._logged_lock:
            self._logged_can_convert = set()
        for entry in entries:
            log.debug("converter %r loaded from %s", entry.info.name, entry.info.origin)
        return list(problems)

    def _instantiate(
        self, discovered: list[Discovered], problems: list[LoadProblem]
    ) -> tuple[list[_Entry], set[str]]:
        """Set up each converter; returns the enabled ones and every name seen."""
        by_name: dict[str, _Entry] = {}
        names: set[str] = set()
        for order, item in enumerate(discovered):
            converter, name = self._create(item, problems)
            if converter is None:
                continue
            names.add(name)  # its settings are not "for no converter", even if refused below
            problem = self._set_up(converter, name, item.origin)
            if problem is not None:
                problems.append(problem)
                continue
            settings = self._settings.get(name, {})
            if settings.get("enabled", True) is False:
                log.info("converter %r (%s) disabled in the config", name, item.origin)
                continue
            kind = item.origin.split(":", 1)[0]
            entry = _Entry(
                converter,
                ConverterInfo(
                    name=name,
                    description=converter.description or _first_line(type(converter).__doc__),
                    origin=item.origin,
                    priority=self._priority(converter, settings),
                    patterns=tuple(converter.patterns),
                ),
                rank=_ORIGIN_RANK.get(kind, 0),
                order=order,
            )
            previous = by_name.get(name)
            if previous is not None:
                if previous.rank < entry.rank:
                    log.info(
                        "converter %r from %s replaces the %s one",
                        name,
                        item.origin,
                        previous.info.origin,
                    )
                else:
                    problems.append(
                        LoadProblem(
                            item.origin,
                            f"converter name {name!r} is already used by {previous.info.origin}; "
                            "give one of them another name",
                            file=_plugin_file(item.origin),
                        )
                    )
                    continue
            by_name[name] = entry
        return sorted(by_name.values(), key=lambda e: e.order), names

    @staticmethod
    def _create(item: Discovered, problems: list[LoadProblem]) -> tuple[BaseConverter | None, str]:
        """The converter object and its checked name, or ``(None, "")`` with the problem added."""
        label = getattr(item.target, "__name__", type(item.target).__name__)
        file = _plugin_file(item.origin)
        try:
            converter = item.target() if isinstance(item.target, type) else item.target
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - plugin code: report it
            problems.append(
                LoadProblem(
                    item.origin,
                    f"class {label} cannot be created: {_raised(exc, file)}; a converter must "
                    "be creatable without arguments (settings come through configure())",
                    file=file,
                    details="".join(traceback.format_exception(exc)),
                )
            )
            return None, ""
        name = converter.name or type(converter).__name__
        priority = converter.priority
        why = ""
        if not isinstance(name, str) or not name.strip():
            why = f"name must be a non-empty string, not {name!r}"
        elif isinstance(priority, bool) or not isinstance(priority, int):
            why = f"priority must be a whole number, not {priority!r}"
        if why:
            problems.append(
                LoadProblem(item.origin, f"class {label}: {why}; fix the class", file=file)
            )
            return None, ""
        converter.name = name
        return converter, name

    def _set_up(self, converter: BaseConverter, name: str, origin: str) -> LoadProblem | None:
        """Apply the config's settings to ``converter``; the problem if they are refused."""
        file = _plugin_file(origin)
        try:
            self._bind(converter, name)
            converter.configure(dict(self._settings.get(name, {})))
        except ValueError as exc:  # the settings are wrong (configure's documented way to say so)
            where = _raised(exc, file, with_type=False)
            if isinstance(exc, ValidationError):  # e.g. settings checked with a pydantic model
                where = ": ".join(describe_validation_error(exc))
            return LoadProblem(
                origin,
                f"converter {name!r} is not used: {where}; fix converters.{name} in the config",
                file=file,
            )
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - plugin code: report it
            return LoadProblem(
                origin,
                f"converter {name!r} is not used: configure() raised {_raised(exc, file)}; "
                "fix the converter's configure()",
                file=file,
                details="".join(traceback.format_exception(exc)),
            )
        return None

    def _bind(self, converter: BaseConverter, name: str) -> None:
        """Check the keys the manager reads itself and apply them (``configure`` follows)."""
        settings = dict(self._settings.get(name, {}))
        enabled = settings.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ValueError(f"converters.{name}.enabled must be true or false")
        patterns = settings.get("patterns")
        if patterns is not None and (
            not isinstance(patterns, list)
            or not all(isinstance(p, str) and p.strip() for p in patterns)
        ):
            raise ValueError(f'converters.{name}.patterns must be a list of globs like ["*.csv"]')
        priority = settings.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ValueError(f"converters.{name}.priority must be a whole number")
        max_size = settings.get("max_size")
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1
        ):
            raise ValueError(f"converters.{name}.max_size must be a positive number of bytes")
        converter.text_encoding = self._text_encoding
        converter.max_file_size = self._max_file_size
        if patterns is not None:
            converter.patterns = tuple(patterns)

    @staticmethod
    def _priority(converter: BaseConverter, settings: Mapping[str, Any]) -> int:
        value = settings.get("priority", converter.priority)
        return value if isinstance(value, int) else 0

    def _ensure_loaded(self) -> None:
        """Load on first use; nobody asked :meth:`load` for the problems, so log them."""
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    for problem in self._load_locked():
                        log.warning("converter not loaded: %s", problem)

    @property
    def problems(self) -> list[LoadProblem]:
        """What the last :meth:`load` could not load."""
        return list(self._problems)

    @property
    def converters(self) -> list[ConverterInfo]:
        """The loaded (enabled) converters, in load order."""
        self._ensure_loaded()
        return [entry.info for entry in self._entries]

    def get(self, name: str) -> BaseConverter | None:
        """The loaded converter called ``name``."""
        self._ensure_loaded()
        return next((e.converter for e in self._entries if e.info.name == name), None)

    # --- selection ------------------------------------------------------

    def candidates(self, path: Path) -> list[Candidate]:
        """Every converter's answer for ``path``, best first (accepted ones lead)."""
        self._ensure_loaded()
        answers: list[tuple[tuple[int, float, int, int], Candidate]] = []
        for entry in self._entries:
            info = entry.info
            if info.patterns and not BaseConverter.matches_patterns(path, info.patterns):
                reason = f"{_NO_MATCH} {', '.join(info.patterns)}"
                answers.append(
                    ((-1, 0.0, 0, 0), Candidate(info.name, info.origin, False, 0.0, reason))
                )
                continue
            try:
                answer = entry.converter.can_convert(path)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - a broken can_convert declines
                raised = f"{type(exc).__name__}: {exc}{_location(exc, entry.converter)}"
                reason = f"can_convert raised {raised}"
                self._log_can_convert(info, path, raised)
                answers.append(
                    ((-1, 0.0, 0, 0), Candidate(info.name, info.origin, False, 0.0, reason))
                )
                continue
            confidence = _confidence(answer)
            if confidence is None:
                reason = f"can_convert returned {answer!r}, not a bool or a confidence 0..1"
                answers.append(
                    ((-1, 0.0, 0, 0), Candidate(info.name, info.origin, False, 0.0, reason))
                )
            elif confidence <= 0:
                answers.append(
                    ((-1, 0.0, 0, 0), Candidate(info.name, info.origin, False, 0.0, "declined"))
                )
            else:
                key = (info.priority, confidence, entry.rank, -entry.order)
                answers.append((key, Candidate(info.name, info.origin, True, confidence)))
        answers.sort(key=lambda pair: (pair[1].accepted, pair[0]), reverse=True)
        return [candidate for _, candidate in answers]

    def _log_can_convert(self, info: ConverterInfo, path: Path, raised: str) -> None:
        """Log a raising ``can_convert`` once per converter (it may raise on every file)."""
        with self._logged_lock:
            if info.name in self._logged_can_convert:
                return
            self._logged_can_convert.add(info.name)
        log.warning(
            "converter %r (%s): can_convert(%s) raised %s; that counts as 'no', for every file "
            "it raises on. Make can_convert return False instead of raising (logged once; "
            "'pywats-client convert FILE' shows it for a file)",
            info.name,
            info.origin,
            path.name,
            raised,
        )

    def select(self, path: Path) -> BaseConverter | None:
        """The converter that takes ``path``, or ``None`` when none accepts it."""
        best = next(iter(self.candidates(path)), None)
        if best is None or not best.accepted:
            return None
        return self.get(best.name)

    # --- conversion -----------------------------------------------------

    def convert(self, path: Path) -> Conversion:
        """Convert ``path``; blocking. Raises :class:`ConversionError` only."""
        path = Path(path)
        try:
            return self._convert(path)
        except ConversionError:
            raise
        except (Exception, SystemExit) as exc:  # a bug here must still be contained
            raise ConversionError(
                f"{path.name}: conversion failed unexpectedly: {type(exc).__name__}: {exc}",
                file=path,
            ) from exc

    def _convert(self, path: Path) -> Conversion:
        self._ensure_loaded()
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise ConversionError(f"{path}: file not found", file=path) from None
        except OSError as exc:
            raise ConversionError(f"{path}: cannot be read ({exc.strerror})", file=path) from None
        if not stat_module.S_ISREG(stat.st_mode):
            raise ConversionError(f"{path}: not a regular file", file=path)
        if stat.st_size > self._max_file_size:
            raise ConversionError(
                f"{path.name}: file is {stat.st_size} bytes, larger than max_file_size "
                f"({self._max_file_size} bytes); refused before parsing. Raise max_file_size "
                "in the config if such files are genuine",
                file=path,
            )
        if stat.st_size == 0:
            raise ConversionError(
                f"{path.name}: file is empty; there is no result in it", file=path
            )
        try:
            (sha256, size), reads = _read_once(path, stat.st_size, self._max_file_size)
        except OSError as exc:
            raise ConversionError(f"{path}: cannot be read ({exc.strerror})", file=path) from None
        with reads:
            return replace(self._convert_read(path, sha256), source_size=size)

    def _convert_read(self, path: Path, sha256: str) -> Conversion:
        candidates = self.candidates(path)
        chosen = candidates[0] if candidates and candidates[0].accepted else None
        converter = self.get(chosen.name) if chosen else None
        if chosen is None or converter is None:
            tried = "; ".join(f"{c.name} ({c.reason})" for c in candidates) or "none loaded"
            raise ConversionError(
                f"{path.name}: no converter accepts this file. Tried: {tried}. "
                f"{_no_converter_hint(path, candidates, self._problems)}",
                file=path,
            )
        name = chosen.name
        ident = threading.get_ident()
        outer = _RUNNING.get(ident)  # a converter that runs a manager itself
        _RUNNING[ident] = name
        try:
            return self._run(converter, name, chosen.origin, path, sha256)
        finally:
            if outer is None:
                _RUNNING.pop(ident, None)
            else:
                _RUNNING[ident] = outer

    def _run(
        self, converter: BaseConverter, name: str, origin: str, path: Path, sha256: str
    ) -> Conversion:
        try:
            output = converter.convert(path)
        except ConversionError as exc:
            if exc.converter is None:
                exc.converter = name
            if exc.file is None:
                exc.file = path
            raise
        except ValidationError as exc:  # a model built with a bad value: say which, like a dict
            key, problem = describe_validation_error(exc)
            raise ConversionError(
                f"{path.name}: converter {name!r} built an invalid {exc.title}"
                f"{_location(exc, converter)}: {key}: {problem}",
                converter=name,
                file=path,
            ) from None
        except (Exception, SystemExit) as exc:
            raise ConversionError(
                f"{path.name}: converter {name!r} failed: {type(exc).__name__}: {exc}",
                converter=name,
                file=path,
            ) from exc
        try:
            reports = normalize_output(
                output, sha256=sha256, defaults=self._defaults, trusted=origin == "built-in"
            )
        except OutputError as exc:
            raise ConversionError(
                f"{path.name}: converter {name!r} {exc}", converter=name, file=path
            ) from None
        log.info(
            "%s: converted by %r (%s) into %d report(s): %s",
            path.name,
            name,
            origin,
            len(reports),
            ", ".join(str(r["id"]) for r in reports),
        )
        return Conversion(source=path, converter=name, source_sha256=sha256, reports=reports)


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if (doc or "").strip() else ""


def _no_converter_hint(
    path: Path, candidates: list[Candidate], problems: Sequence[LoadProblem]
) -> str:
    """What to do when no converter accepts ``path``, from how each one answered.

    A converter that did not load (a typo in its file, a wrong converter_path) was
    not tried at all: its author, editing it, needs to hear that first, not to be
    told to write one.
    """
    hints: list[str] = []
    if problems:
        hints.append(
            f"Fix first what did not load, it was not tried ({len(problems)} problem(s), "
            f"'pywats-client converters' lists them; the first: [{problems[0]}])"
        )
    hints.append(
        f"{'add' if hints else 'Add'} a converter plugin for this format (docs/converters.md)"
    )
    declined = [c.name for c in candidates if not c.reason.startswith(_NO_MATCH)]
    if declined:
        hints.append(
            f"if {' or '.join(declined)} should take it, check what its can_convert looks for "
            "(a file it usually takes may have been read before the tester finished writing "
            "it: then raise ready_after, or use ready_marker)"
        )
    if len(declined) < len(candidates):
        glob = f"*{path.suffix.lower()}" if path.suffix else path.name
        hints.append(
            f"add {glob!r} to the patterns of the converter that should take it, in the config: "
            f'"converters": {{"<name>": {{"patterns": [..., "{glob}"]}}}}'
        )
    return "; or ".join(hints)


def _plugin_file(origin: str) -> Path | None:
    return Path(origin[len("plugin:") :]) if origin.startswith("plugin:") else None


def _raised(exc: BaseException, file: Path | None, *, with_type: bool = True) -> str:
    """``line N: Type: message`` (the line in ``file`` it was raised from, when there is one)."""
    where = ""
    if file is not None:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(file)]
        if frames:
            where = f"line {frames[-1].lineno}: "
    what = f"{type(exc).__name__}: {exc}" if with_type else str(exc)
    return f"{where}{what}"


def _location(exc: BaseException, converter: BaseConverter) -> str:
    """`` (at <file> line N)``: the last line of the converter's own file in the traceback."""
    module = sys.modules.get(type(converter).__module__)
    source = getattr(module, "__file__", None)
    if not source:
        return ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == source]
    if not frames:
        return ""
    return f" (at {Path(source).name} line {frames[-1].lineno})"


#: Thread ident -> the converter it runs (from choosing it until its result is checked).
_RUNNING: dict[int, str] = {}


def converter_running_in(thread: threading.Thread) -> str | None:
    """The converter ``thread`` is running now, if any.

    For a conversion abandoned after ``converter_timeout``: its error file can
    name the converter that hung, read from the stuck thread.
    """
    return _RUNNING.get(thread.ident) if thread.ident is not None else None
