"""The GUI example in docs/gui-api.md runs as printed (against a fake supervisor)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests._control_fakes import FakeSupervisor, serving, write_registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "gui-api.md"


def example(registry: Path) -> dict[str, Any]:
    code = re.search(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert code is not None
    source, count = re.subn(
        r'^REGISTRY = ".*"$', f"REGISTRY = {str(registry)!r}", code[1], flags=re.M
    )
    assert count == 1
    lines = [line for line in source.splitlines() if line.strip()]
    assert len(lines) <= 12, "the example stays about ten lines"
    namespace: dict[str, Any] = {}
    exec(compile(source, str(DOC), "exec"), namespace)
    return namespace


def test_the_gui_example_polls_and_restarts(tmp_path: Path) -> None:
    registry = write_registry(tmp_path, ["st-1", "st-2"])
    gui = example(registry)
    table = SimpleNamespace(rows=[])
    gui["refresh"](table)
    assert [row[:2] for row in table.rows] == [("st-1", "not-running"), ("st-2", "not-running")]
    answer = gui["on_restart_clicked"]("st-1")
    assert answer.startswith("no supervisor is running for")

    fake = FakeSupervisor(registry, ["st-1", "st-2"])
    with serving(fake, tmp_path / ".pywats"):
        answer = gui["on_restart_clicked"]("st-1")
        assert answer == f"st-1: running, pid {fake.record('st-1')['pid']}"
        fake.crash_on_start.add("st-2")
        assert gui["on_restart_clicked"]("st-2").startswith("worker exited")
        assert "no-such-station" in gui["on_restart_clicked"]("no-such-station")
