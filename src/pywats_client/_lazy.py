"""Names a package exports but imports on first use (PEP 562).

Processes that need one corner of a package (a GUI reading status, a worker,
the upload helper) then do not pay for the rest of it at start: imports are
most of a Python process's start-up time and memory.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: dict[str, Any], where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the package whose ``globals()`` is ``namespace``.

    ``where`` maps each lazy name to the module that defines it, as
    ``"package.module"``, or ``"package.module:other_name"`` for an alias.
    A name is imported once, then kept in ``namespace``.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        target = where.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = target.partition(":")
        value = getattr(importlib.import_module(module), attribute or name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *namespace.get("__all__", ()), *where})

    return __getattr__, __dir__
