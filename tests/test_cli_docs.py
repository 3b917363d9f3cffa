"""docs/quickstart.md shows what `init` and `server` really print and write."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pywats_client.cli import main
from pywats_client.cli.init import WINDOWS_PROTECTION
from tests.helpers import wait_until

QUICKSTART = Path(__file__).resolve().parents[1] / "docs" / "quickstart.md"


def console_block(starting: str) -> list[str]:
    """The lines of the ```console block whose first line starts with ``starting``."""
    text = QUICKSTART.read_text(encoding="utf-8")
    for block in re.findall(r"^```console\n(.*?)^```", text, re.S | re.M):
        lines: list[str] = block.splitlines()
        if lines[0].startswith(starting):
            return lines
    raise AssertionError(f"no console block starting with {starting!r}")


def unquoted(word: str) -> str:
    return word[1:-1] if len(word) > 1 and word[0] == word[-1] == '"' else word


def test_quickstart_init_example_shows_what_init_prints_and_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command, printed = console_block("(venv) > pywats-client init ")
    words = [unquoted(w) for w in shlex.split(command.removeprefix("(venv) > "), posix=False)]
    doc_config = words[words.index("--config") + 1]
    config = tmp_path / "config.json"
    words[words.index("--config") + 1] = str(config)
    assert main(words[1:]) == 0
    out = " ".join(capsys.readouterr().out.split())
    # the page shows a Windows PC, where the file takes its folder's permissions
    out = out.replace("(owner-only)", f"({WINDOWS_PROTECTION})")
    assert out == printed.replace(doc_config, str(config))

    text = QUICKSTART.read_text(encoding="utf-8")
    (shown,) = re.findall(r"^```json\n(.*?)^```", text, re.S | re.M)
    written = json.loads(config.read_text(encoding="utf-8"))
    for key, value in json.loads(shown).items():
        assert written[key] == value, (
            f"{key}: init writes {written[key]!r}, the page shows {value!r}"
        )


def test_quickstart_server_example_shows_the_lines_the_server_prints(tmp_path: Path) -> None:
    command, *shown = console_block("(venv) > pywats-client server ")
    args = shlex.split(command.removeprefix("(venv) > pywats-client "))
    args[args.index("--port") + 1] = "0"  # any free port
    port_file = tmp_path / "port"
    server = subprocess.Popen(
        [sys.executable, "-m", "pywats_client", *args, "--port-file", str(port_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(port_file.exists, 60, message="the stand-in server to listen")
    finally:
        server.terminate()
        out, err = server.communicate(timeout=60)
    printed = out.splitlines()
    printed = printed[: next(i for i, line in enumerate(printed) if "listening on" in line) + 1]
    assert [line.split()[0] for line in printed] == [line.split()[0] for line in shown], err
    assert shown[-1] == "listening on http://127.0.0.1:8765"
