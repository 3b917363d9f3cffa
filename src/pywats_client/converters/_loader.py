"""Discovering converter classes: plugin files, entry points, built-ins.

Each plugin file is imported on its own, under a unique module name, so two
stations' ``my_converter.py`` never collide and one broken file never stops
the others: its error becomes a :class:`LoadProblem` with the file and line.

The seed README's example uses ``Path`` without importing it and imports
``from pywats.models import UUTReport``. This package ships no ``pywats``
(another distribution owns that name), so while a plugin file executes, and
only then, ``pywats``/``pywats.models`` resolve to ``pywats_client.models``
when no real ``pywats`` is installed, and ``Path`` is pre-set in the plugin's
namespace. A one-time log line recommends the real import.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import hashlib
import importlib.metadata
import importlib.util
import inspect
import logging
import re
import sys
import threading
import traceback
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pywats_client.converters.base import BaseConverter

__all__ = [
    "ENTRY_POINT_GROUP",
    "Discovered",
    "LoadProblem",
    "discover_entry_points",
    "discover_plugin_dir",
]

log = logging.getLogger(__name__)

#: Entry-point group installed packages register converters under.
ENTRY_POINT_GROUP = "pywats_client.converters"

_IMPORT_LOCK = threading.Lock()
_hint_logged = False


@dataclass(frozen=True)
class LoadProblem:
    """A converter source that could not be loaded (the others still are).

    ``origin`` is ``plugin:<file>``, ``entry-point:<name>`` or ``config``;
    ``file`` the plugin file when there is one; ``error`` one line saying what
    went wrong and where; ``details`` the traceback, if any.
    """

    origin: str
    error: str
    file: Path | None = None
    details: str = ""

    def __str__(self) -> str:
        return f"{self.origin}: {self.error}"


@dataclass(frozen=True)
class Discovered:
    """A converter class (or ready instance) and where it came from."""

    target: type[BaseConverter] | BaseConverter
    origin: str


def _module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode("utf-8"), usedforsecurity=False)
    stem = re.sub(r"\W", "_", path.stem)
    return f"_pywats_plugin_{digest.hexdigest()[:12]}_{stem}"


def _pywats_resolvable() -> bool:
    try:
        return importlib.util.find_spec("pywats") is not None
    except (ImportError, ValueError):
        return False


def _imports_pywats(source: str) -> bool:
    """Whether the plugin source imports ``pywats`` (not ``pywats_client``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        if any(name == "pywats" or name.startswith("pywats.") for name in names):
            return True
    return False


@contextlib.contextmanager
def _pywats_alias() -> Iterator[None]:
    """``pywats.models`` -> ``pywats_client.models`` while a plugin executes."""
    if "pywats" in sys.modules or _pywats_resolvable():
        yield
        return
    import pywats_client.models as models

    shim = types.ModuleType("pywats", "Alias of pywats_client for converter plugins.")
    shim.__path__ = []
    shim.models = models  # type: ignore[attr-defined]
    added = {"pywats": shim, "pywats.models": models}
    sys.modules.update(added)
    try:
        yield
    finally:
        for key, value in added.items():
            if sys.modules.get(key) is value:
                del sys.modules[key]


def _log_pywats_hint(path: Path) -> None:
    global _hint_logged
    if _hint_logged:
        return
    _hint_logged = True
    log.info(
        "%s imports pywats.models; this package ships the report models as "
        "pywats_client.models, so it was given those. Write "
        "'from pywats_client.models import UUTReport' to make that explicit.",
        path,
    )


def _error_line(exc: BaseException, path: Path) -> str:
    """One line: the exception and the plugin-file line it came from."""
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename == str(path):
        where = f"line {exc.lineno}: "
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        if frames:
            where = f"line {frames[-1].lineno}: "
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{where}{type(exc).__name__}{': ' + message if message else ''}"


def _import_plugin(path: Path) -> types.ModuleType:
    """Execute ``path`` as a fresh module of its own."""
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    module.__dict__["Path"] = Path  # the seed example uses Path without importing it
    source = path.read_text(encoding="utf-8-sig", errors="replace")
    if _imports_pywats(source):
        _log_pywats_hint(path)
    with _IMPORT_LOCK, _pywats_alias():
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
    return module


def _converter_classes(module: types.ModuleType) -> list[type[BaseConverter]]:
    """Concrete ``BaseConverter`` subclasses defined in ``module`` (definition order)."""
    found = []
    for value in vars(module).values():
        if (
            inspect.isclass(value)
            and issubclass(value, BaseConverter)
            and value.__module__ == module.__name__
            and not inspect.isabstract(value)
        ):
            found.append(value)
    return found


def _abstract_classes(
    module: types.ModuleType, concrete: list[type[BaseConverter]]
) -> list[type[BaseConverter]]:
    """``BaseConverter`` subclasses in ``module`` that cannot be used: ``convert`` is missing.

    A shared base is not a mistake: a class some converter derives from, or one
    named as a base (``_Name``, ``BaseName``), which plugins in other files may extend.
    """
    bases = {base for cls in concrete for base in cls.__mro__[1:]}
    return [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, BaseConverter)
        and value.__module__ == module.__name__
        and inspect.isabstract(value)
        and value not in bases
        and not value.__subclasses__()
        and not value.__name__.startswith(("_", "Base"))
    ]


def _incomplete(cls: type[BaseConverter]) -> str:
    """``class X (line N) has no convert()``, with a near-miss method name if there is one."""
    where = ""
    with contextlib.suppress(OSError, TypeError):
        where = f" (line {inspect.getsourcelines(cls)[1]})"
    missing = sorted(cls.__abstractmethods__)
    defined = [name for name, value in vars(cls).items() if inspect.isfunction(value)]
    hints = []
    for name in missing:
        close = difflib.get_close_matches(name, defined, n=1, cutoff=0.6)
        if close:
            hints.append(f"rename {close[0]}() to {name}()")
        elif name == "convert":
            hints.append("add def convert(self, file_path) returning the report(s)")
        else:
            hints.append(f"implement {name}()")
    methods = ", ".join(f"{name}()" for name in missing)
    return f"class {cls.__name__}{where} has no {methods}, so it is not used; {'; '.join(hints)}"


def _import_hint(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"install {exc.name!r} into the service's Python environment, or remove the import"
    return "fix the file (the other converters still load)"


def discover_plugin_dir(folder: Path) -> tuple[list[Discovered], list[LoadProblem]]:
    """Converter classes in ``folder/*.py`` (files starting with ``_`` are helpers)."""
    found: list[Discovered] = []
    problems: list[LoadProblem] = []
    if not folder.is_dir():
        if folder.exists():
            problems.append(
                LoadProblem(
                    f"plugin:{folder}",
                    "converter_path is not a folder; point converter_path at the folder "
                    "holding the converter .py files",
                    file=folder,
                )
            )
        return found, problems
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith(("_", ".")):
            continue
        origin = f"plugin:{path}"
        # the last line in the log if the plugin takes the whole process down (os._exit)
        log.info("importing converter plugin %s", path)
        try:
            module = _import_plugin(path)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - any plugin failure is reported
            problems.append(
                LoadProblem(
                    origin,
                    f"import failed: {_error_line(exc, path)}; {_import_hint(exc)}",
                    file=path,
                    details="".join(traceback.format_exception(exc)),
                )
            )
            continue
        classes = _converter_classes(module)
        incomplete = _abstract_classes(module, classes)
        problems.extend(LoadProblem(origin, _incomplete(cls), file=path) for cls in incomplete)
        if not classes and not incomplete:
            problems.append(
                LoadProblem(
                    origin,
                    "defines no BaseConverter subclass (from pywats_client.converters); "
                    "define one, or start the file name with _ if it only holds helpers",
                    file=path,
                )
            )
        found.extend(Discovered(cls, origin) for cls in classes)
    return found, problems


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def discover_entry_points() -> tuple[list[Discovered], list[LoadProblem]]:
    """Converters registered by installed packages under :data:`ENTRY_POINT_GROUP`.

    An entry point names a ``BaseConverter`` subclass (or an instance of one).
    """
    found: list[Discovered] = []
    problems: list[LoadProblem] = []
    for entry in _entry_points():
        dist = getattr(entry, "dist", None)
        origin = f"entry-point:{dist.name if dist is not None else entry.value}"
        try:
            target: Any = entry.load()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported, others still load
            problems.append(
                LoadProblem(
                    origin,
                    f"{entry.name} = {entry.value}: import failed: {type(exc).__name__}: {exc}",
                    details="".join(traceback.format_exception(exc)),
                )
            )
            continue
        if (inspect.isclass(target) and issubclass(target, BaseConverter)) or isinstance(
            target, BaseConverter
        ):
            found.append(Discovered(target, origin))
        else:
            problems.append(
                LoadProblem(
                    origin,
                    f"{entry.name} = {entry.value} is not a BaseConverter subclass or instance",
                )
            )
    return found, problems
