"""Helpers for control-channel e2e tests: run the CLI as a separate process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e._supervisor import clean_env


def cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``pywats-client ARGS`` in a fresh process, as an operator would type it."""
    return subprocess.run(
        [sys.executable, "-m", "pywats_client", *args],
        env=clean_env(COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_json(*args: str, registry: Path) -> dict[str, Any]:
    """Run a control command with ``--json``; its document (exit code checked: 0)."""
    done = cli(*args, "--registry", str(registry), "--json")
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in document["instances"]}
