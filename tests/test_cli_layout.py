"""The CLI's layout helpers: the layout that fits, and a wide page for files and pipes."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pywats_client.cli._layout import Fit, free_text_width
from pywats_client.cli._output import PIPE_WIDTH, _Console

ID = "0b6c3a52-5f41-4d7e-9a57-2f1d8c4e9b10"


def table(probe_width: int | None = None) -> Table:
    """An id and a long error; ``probe_width``: the error pinned at that width."""
    t = Table()
    t.add_column("id", no_wrap=True)
    t.add_column("error", overflow="fold", min_width=probe_width, max_width=probe_width)
    t.add_row(ID, "a long reason " * 10)
    return t


def render(width: int, *, terminal: bool = True) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=terminal, color_system=None)
    fit = Fit([(table(), table(30)), (Text("narrow layout"), None)])
    console.print(fit)
    return out.getvalue()


def test_fit_takes_the_table_when_its_narrowest_form_fits() -> None:
    assert ID in render(100) and "narrow layout" not in render(100)
    # id (36) + error (30) + borders (7) = 73 columns
    assert "narrow layout" not in render(73)
    assert render(72).strip() == "narrow layout"


def test_free_text_width_is_the_minimum_unless_the_texts_are_shorter() -> None:
    assert free_text_width("last error", ["x" * 100, None], 40) == 40
    assert free_text_width("last error", ["boom", None], 40) == len("last error")
    assert free_text_width("last error", [], 40) == len("last error")
    assert free_text_width("why", ["connection refused"], 40) == len("connection refused")


def test_output_to_a_file_or_pipe_is_laid_out_wide() -> None:
    piped = _Console(file=io.StringIO(), width=80)
    assert piped.width == PIPE_WIDTH
    terminal = _Console(file=io.StringIO(), width=80, force_terminal=True)
    assert terminal.width == 80
