"""Which files in which folders are candidates: watch roots, patterns, exclusions, scans.

Kept separate from the watcher so that the rules ("Done and Error are never
scanned", "marker files are not results", "a nested watch folder belongs to
itself") are stated once and tested without threads or timing.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pywats_client.core.config import ClientConfig
from pywats_client.errors import ConfigError

__all__ = ["FilterRules", "WatchRoot", "build_roots", "root_for", "scan_root"]

_CASE_INSENSITIVE = sys.platform == "win32"


def _fold(text: str) -> str:
    """``text`` as the file system compares names (case-folded where it ignores case)."""
    return text.casefold() if _CASE_INSENSITIVE else text


def _key(path: Path) -> str:
    """Comparable form of a folder path."""
    return _fold(os.path.normpath(str(path)))


def _glob_matcher(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for "any of ``patterns``", as ``fnmatch.fnmatch`` reads each of them.

    A rescan asks about every name in the watch folders and the event loop about
    every file event; a pattern at a time (eight with the default
    ``ignore_patterns``) cost about 4.5 us a name, this about 0.5 us.
    """
    if not patterns:
        return None
    return re.compile("|".join(fnmatch.translate(os.path.normcase(p)) for p in patterns))


@dataclass(frozen=True)
class FilterRules:
    """Name rules: what is a result file and what is never one.

    Patterns match as ``fnmatch.fnmatch`` does: case-insensitive on Windows
    (``os.path.normcase``), case-sensitive elsewhere.
    """

    patterns: tuple[str, ...] = ("*",)
    ignore: tuple[str, ...] = ()
    marker: str | None = None
    _taken: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _ignored: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_taken", _glob_matcher(self.patterns))
        object.__setattr__(self, "_ignored", _glob_matcher(self.ignore))

    @classmethod
    def for_config(cls, config: ClientConfig) -> FilterRules:
        """The rules a station with ``config`` applies."""
        return cls(tuple(config.file_patterns), tuple(config.ignore_patterns), config.ready_marker)

    def marked_name(self, name: str) -> str | None:
        """The result file a marker named ``name`` stands for; ``None`` if not a marker.

        Case-insensitive on Windows: ``R1.CSV.DONE`` marks ``R1.CSV`` there.
        ``..done`` marks nothing: no file can be named ``.``.
        """
        if not self.marker or len(name) <= len(self.marker):
            return None
        stem, suffix = name[: -len(self.marker)], name[-len(self.marker) :]
        if stem in (".", "..") or _fold(suffix) != _fold(self.marker):
            return None
        return stem

    def accepts(self, name: str) -> bool:
        return self.verdict(name) is True

    def verdict(self, name: str) -> bool | None:
        """``True`` taken, ``None`` ignored on purpose (a marker, ``ignore``), ``False``
        no pattern takes it: worth telling about."""
        if self.marker and (
            self.marked_name(name) is not None or _fold(name) == _fold(self.marker)
        ):
            return None
        folded = os.path.normcase(name)
        if self._ignored is not None and self._ignored.match(folded):
            return None
        return self._taken is not None and self._taken.match(folded) is not None

    def unmatched_note(self, folder: Path, count: int, example: str) -> str:
        """What to tell about ``count`` unmatched files in ``folder``, ``example`` one of them."""
        patterns = ", ".join(self.patterns)
        hint = ""
        if any(fnmatch.fnmatchcase(example.lower(), p.lower()) for p in self.patterns):
            hint = " (patterns are case-sensitive on this system: add the pattern in this case too)"
        return (
            f"{folder}: {count} file(s) whose names match none of file_patterns ({patterns}), "
            f"such as {example!r}, are left alone{hint}; add a pattern that takes them, or "
            "add them to ignore_patterns if they belong there"
        )


@dataclass(frozen=True)
class WatchRoot:
    """One watched folder, where its sources go, and the folders under it to skip."""

    path: Path
    done_dir: Path
    error_dir: Path
    recursive: bool
    excluded: frozenset[str] = field(default_factory=frozenset)

    def owns_dir(self, folder: Path) -> bool:
        """True if files directly in ``folder`` belong to this root (not excluded)."""
        key = _key(folder)
        root = _key(self.path)
        if key == root:
            return True
        if not self.recursive or not key.startswith(root.rstrip(os.sep) + os.sep):
            return False
        # Every folder between the root and ``folder`` must be allowed.
        current = Path(folder)
        while _key(current) != root:
            if _key(current) in self.excluded:
                return False
            current = current.parent
        return True


def build_roots(config: ClientConfig) -> list[WatchRoot]:
    """Watch roots of ``config``, each excluding every Done/Error/queue folder and nested root.

    Raises :class:`ConfigError` when a Done or Error folder is a watch folder:
    the sources moved there would be taken and moved again without end.
    """
    watch_dirs = list(dict.fromkeys(config.watch_dirs))
    watched = {_key(w): w for w in watch_dirs}
    special: set[str] = {_key(config.queue_dir)}
    for watch in watch_dirs:
        for key, folder in (
            ("done_path", config.done_dir_for(watch)),
            ("error_path", config.error_dir_for(watch)),
        ):
            if _key(folder) in watched:
                raise ConfigError(
                    f"{folder} is a watch folder; sources moved there would be taken "
                    "again and again. Use a folder outside watch_paths (or leave it "
                    "unset for a Done/Error folder inside each watch folder)",
                    key=key,
                )
            special.add(_key(folder))
    roots = []
    for watch in watch_dirs:
        nested = {_key(other) for other in watch_dirs if other != watch}
        roots.append(
            WatchRoot(
                path=watch,
                done_dir=config.done_dir_for(watch),
                error_dir=config.error_dir_for(watch),
                recursive=config.recursive,
                excluded=frozenset((special | nested) - {_key(watch)}),
            )
        )
    return roots


def root_for(roots: Iterable[WatchRoot], path: Path) -> WatchRoot | None:
    """The root whose files include ``path`` (the deepest matching one), if any."""
    best: WatchRoot | None = None
    for root in roots:
        if root.owns_dir(path.parent) and (
            best is None or len(_key(root.path)) > len(_key(best.path))
        ):
            best = root
    return best


def scan_root(
    root: WatchRoot,
    rules: FilterRules,
    errors: list[str] | None = None,
    notes: dict[Path, str] | None = None,
) -> Iterator[tuple[Path, os.stat_result]]:
    """Every accepted file under ``root`` with its stat; vanished entries are skipped.

    Folders that cannot be listed are skipped and described in ``errors``.
    Results that are there but never taken (in a sub-folder that is not
    watched, behind a link, or named as no pattern takes and no ignore pattern
    explains) are described in ``notes``, by folder or link: the operator should
    hear of them, though they may be left there on purpose.
    """
    stack = [root.path]
    noted_unmatched = 0
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as iterator:
                entries = list(iterator)
        except (FileNotFoundError, NotADirectoryError):
            if folder == root.path and errors is not None:
                errors.append(f"watch folder {folder} does not exist")
            continue
        except OSError as exc:
            if errors is not None:
                errors.append(f"cannot list {folder}: {exc.strerror or exc}")
            continue
        unwatched = unmatched = 0
        example = ""
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if _key(Path(entry.path)) in root.excluded:
                        continue
                    if root.recursive:
                        stack.append(Path(entry.path))
                    elif notes is not None and unwatched < _SUBFOLDERS_CHECKED:
                        unwatched += 1
                        _note_unwatched(Path(entry.path), rules, notes)
                    continue
                if not entry.is_file():
                    if notes is not None and entry.is_symlink():
                        _note_link(root, Path(entry.path), rules, notes)
                    continue
                verdict = rules.verdict(entry.name)
                if verdict is not True:
                    if verdict is False and notes is not None:
                        unmatched += 1
                        example = example or entry.name
                    continue
                yield Path(entry.path), entry.stat()
            except FileNotFoundError:
                continue
        if unmatched and notes is not None and noted_unmatched < _SUBFOLDERS_CHECKED:
            noted_unmatched += 1
            notes[folder] = rules.unmatched_note(folder, unmatched, example)


#: Sub-folders of a non-recursive watch folder looked into per scan, and entries
#: read in each, for the note that results there are not taken (bounds on the
#: cost of a folder that holds years of dated sub-folders full of other files);
#: also the most folders of one watch folder noted for files no pattern takes.
_SUBFOLDERS_CHECKED = 20
_ENTRIES_CHECKED = 100


def _note_unwatched(folder: Path, rules: FilterRules, notes: dict[Path, str]) -> None:
    """Note ``folder`` if it directly holds a result file that is not taken."""
    try:
        with os.scandir(folder) as iterator:
            entries = itertools.islice(iterator, _ENTRIES_CHECKED)
            example = next((e.name for e in entries if rules.accepts(e.name) and e.is_file()), None)
    except OSError:
        return
    if example is not None:
        notes[folder] = (
            f"{folder} holds result files (such as {example!r}) that are not taken, because "
            "recursive is false: set recursive to true, or have the tester write into "
            f"{folder.parent}"
        )


def _note_link(root: WatchRoot, path: Path, rules: FilterRules, notes: dict[Path, str]) -> None:
    """Note a link that is neither a file nor followed, where results may hide behind it."""
    if path.is_dir():
        if root.recursive and _key(path) not in root.excluded:
            notes[path] = (
                f"{path} is a link to a folder, and links to folders are not followed; "
                "if results are written there, add that folder to watch_paths"
            )
    elif rules.accepts(path.name):
        notes[path] = f"{path} is a link whose target does not exist or cannot be read"
