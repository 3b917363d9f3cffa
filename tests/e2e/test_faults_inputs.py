"""Torture CI subset: partial, empty, binary, huge and malicious files among good ones."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests._torture import BAD_KINDS, run_checked

pytestmark = pytest.mark.e2e


def test_bad_inputs_end_in_error_with_a_reason_and_good_ones_flow(tmp_path: Path) -> None:
    result = run_checked(tmp_path, "bad-input", seed=41, bad_fraction=0.4, slow_fraction=0.2)
    kinds = Counter(name.split("-")[-1].split(".")[0] for name in _error_files(tmp_path))
    assert result.audit.errored == result.faults["bad-input"] >= len(BAD_KINDS)
    assert set(kinds) >= {"truncated", "empty", "binary", "huge", "bomb", "xxe"}
    assert result.audit.accepted == result.audit.valid > 10


def _error_files(root: Path) -> list[str]:
    return [p.name for p in root.glob("st*/in/Error/*") if not p.name.endswith(".error.txt")]
