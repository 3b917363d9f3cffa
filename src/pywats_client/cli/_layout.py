"""Tables that stay readable at any width: pick the layout that fits.

A table of identifiers (ids, pids, states, counts) plus free text (errors)
only reads well when every identifier fits whole; below that width the
commands switch to a layout that puts the free text on lines of its own,
instead of letting rich cut ids and wrap errors a few letters per line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement

__all__ = ["FREE_TEXT_MIN", "Fit", "Layout", "free_text_width", "needed_width"]

#: Narrowest a free-text column (an error, a reason) may get before a command
#: switches to a layout that gives it whole lines.
FREE_TEXT_MIN = 24

_UNLIMITED = 1_000_000


def free_text_width(header: str, texts: Iterable[str | None], minimum: int) -> int:
    """The narrowest a free-text column may get: ``minimum``, or less if its texts are short."""
    longest = max((len(t) for t in texts if t), default=0)
    return max(len(header), min(minimum, longest))


def needed_width(console: Console, options: ConsoleOptions, probe: RenderableType) -> int:
    """The width ``probe`` takes when nothing limits it."""
    return Measurement.get(console, options.update_width(_UNLIMITED), probe).maximum


#: ``(view, probe)``: ``probe`` is the view at its narrowest acceptable width
#: (free-text columns pinned at their minimum, identifiers whole), or ``None``
#: for a view that always fits.
Layout = tuple[RenderableType, "RenderableType | None"]


class Fit:
    """Renders the first layout whose probe fits the width given, else the last layout.

    ``layouts`` is the list, or a function of the console options that makes
    it (to lay out differently for a terminal than for a file).
    """

    def __init__(
        self, layouts: Sequence[Layout] | Callable[[ConsoleOptions], Sequence[Layout]]
    ) -> None:
        self.layouts = layouts

    def choose(self, console: Console, options: ConsoleOptions) -> RenderableType:
        layouts = self.layouts(options) if callable(self.layouts) else self.layouts
        if not layouts:
            raise ValueError("Fit needs at least one layout")
        for view, probe in layouts:
            if probe is None or needed_width(console, options, probe) <= options.max_width:
                return view
        return layouts[-1][0]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.choose(console, options)
