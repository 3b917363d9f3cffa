"""The user documentation says what the code does.

* docs/configuration.md documents every key of the config models, and no key
  they no longer have (its tables are generated: ``python -m tests._config_docs``).
* The examples in README.md and docs/ run as printed: configs load, the
  converter converts, the library snippets work against a real server.
* README.md gives exactly the two set-up commands, and the test command is the
  one CI runs.
* Every CLI command's ``--help`` shows an example.
* Relative links between the documents point at files and headings that exist.
* The service files in packaging/ stop the supervisor gracefully.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pywats_client.cli import build_parser
from pywats_client.converters import ConverterManager
from pywats_client.core import ClientConfig, Registry, SupervisorSettings
from tests import _config_docs
from tests._standin import StandinClient
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SAMPLES = Path(__file__).resolve().parent / "data" / "converters"

TEST_COMMAND = "pip install -e '.[test]' && python -m pytest"
DEMO_COMMAND = "pip install . && pywats-client demo"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def code_blocks(text: str, language: str) -> list[str]:
    """The fenced code blocks of ``language`` in ``text``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)


def _block_starting(text: str, language: str, first_line: str) -> str:
    for block in code_blocks(text, language):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"no ```{language} block starting with {first_line!r}")


def _block_containing(text: str, language: str, needle: str) -> str:
    found = [b for b in code_blocks(text, language) if needle in b]
    assert len(found) == 1, f"expected one ```{language} block with {needle!r}, found {len(found)}"
    return found[0]


# --- the configuration reference ------------------------------------------------------


@pytest.mark.parametrize("block", _config_docs.BLOCKS, ids=lambda b: b.name)
def test_configuration_reference_documents_exactly_the_model_keys(
    block: _config_docs.Block,
) -> None:
    region = _config_docs.generated_blocks(_read(_config_docs.CONFIG_DOC))[block.name]
    assert region is not None, (
        f"docs/configuration.md has no generated region {block.name!r}; "
        f"run '{_config_docs.REGENERATE}'"
    )
    documented = _config_docs.documented_keys(region)
    expected = _config_docs.model_keys(block)
    undocumented = sorted(expected - documented)
    stale = sorted(documented - expected)
    assert not undocumented and not stale, (
        f"docs/configuration.md ({block.model.__name__}): undocumented keys {undocumented}, "
        f"documented keys that no longer exist {stale}; run '{_config_docs.REGENERATE}'"
    )


@pytest.mark.parametrize("block", _config_docs.BLOCKS, ids=lambda b: b.name)
def test_configuration_reference_tables_match_the_models(block: _config_docs.Block) -> None:
    region = _config_docs.generated_blocks(_read(_config_docs.CONFIG_DOC))[block.name]
    assert region == _config_docs.render_block(block), (
        f"the {block.name!r} table of docs/configuration.md is stale (a type, default or "
        f"description changed); run '{_config_docs.REGENERATE}'"
    )


def test_the_generator_notices_a_key_the_page_lacks() -> None:
    block = _config_docs.BLOCKS[2]
    text = _config_docs.render_block(block)
    without = "\n".join(line for line in text.splitlines() if "`stop_timeout`" not in line)
    assert _config_docs.model_keys(block) - _config_docs.documented_keys(without) == {
        "stop_timeout"
    }


def test_every_config_example_in_the_docs_is_a_valid_station_config() -> None:
    blocks = [
        block
        for doc in (README, DOCS / "configuration.md", DOCS / "quickstart.md")
        for block in code_blocks(_read(doc), "json")
    ]
    assert len(blocks) >= 4
    for block in blocks:
        ClientConfig.from_dict(json.loads(block))  # ConfigError names the key at fault


def test_every_registry_example_in_the_docs_loads(tmp_path: Path) -> None:
    blocks = [
        block
        for doc in (DOCS / "configuration.md", DOCS / "quickstart.md", DOCS / "operations.md")
        for block in code_blocks(_read(doc), "toml")
    ]
    assert len(blocks) >= 3
    for n, block in enumerate(blocks):
        path = tmp_path / f"instances-{n}.toml"
        path.write_text(block, encoding="utf-8")
        registry = Registry.load(path, check_configs=False)
        assert registry.instances, f"registry example {n} lists no instance"


def test_the_shipped_example_registry_and_configs_load() -> None:
    registry = Registry.load(ROOT / "instances.example.toml")
    assert registry.names == ["station-1", "station-2"]


# --- README ---------------------------------------------------------------------------


def test_readme_starts_with_exactly_the_two_setup_commands() -> None:
    text = _read(README)
    first = code_blocks(text, "bash")[0]
    assert [line for line in first.splitlines() if line.strip()] == [DEMO_COMMAND, TEST_COMMAND]
    assert text.index(DEMO_COMMAND) < text.index("## A short tour") < 3000


def test_ci_runs_the_readme_test_command() -> None:
    ci = _read(ROOT / ".ci" / "run")
    install, run = TEST_COMMAND.split(" && ")
    assert re.search(r"python -m pip install (--quiet )?-e '\.\[test\]'", ci), install
    assert re.search(rf"^{re.escape(run)}$", ci, re.M), run


def test_readme_converter_converts_the_readme_sample(tmp_path: Path) -> None:
    text = _read(README)
    plugins = tmp_path / "converters"
    plugins.mkdir()
    code = _block_starting(text, "python", "# converters/my_converter.py")
    (plugins / "my_converter.py").write_text(code, encoding="utf-8")
    sample = tmp_path / "board_0042.test"
    sample.write_text(_block_starting(text, "text", "part_number = PCBA-400"), encoding="utf-8")

    manager = ConverterManager.from_dirs([plugins], entry_points=False)
    assert manager.load() == []
    conversion = manager.convert(sample)

    assert conversion.converter == "My Test System Converter"
    (report,) = conversion.reports
    assert (report["pn"], report["sn"], report["rev"], report["result"]) == (
        "PCBA-400",
        "B400-0042",
        "A",
        "P",
    )
    assert [s["name"] for s in report["root"]["steps"]] == ["Supply current", "Display test"]


def _run_snippet(code: str, cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    script = cwd / "snippet.py"
    script.write_text(code, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_readme_converter_manager_snippet_runs(tmp_path: Path) -> None:
    text = _read(README)
    (tmp_path / "converters").mkdir()
    (tmp_path / "converters" / "my_converter.py").write_text(
        _block_starting(text, "python", "# converters/my_converter.py"), encoding="utf-8"
    )
    (tmp_path / "board_0042.test").write_text(
        _block_starting(text, "text", "part_number = PCBA-400"), encoding="utf-8"
    )
    result = _run_snippet(_block_containing(text, "python", "ConverterManager.from_dirs"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("My Test System Converter ['"), result.stdout


def test_readme_config_snippet_runs(tmp_path: Path) -> None:
    code = _block_containing(_read(README), "python", "load_or_create")
    result = _run_snippet(code, tmp_path)
    assert result.returncode == 0, result.stderr
    saved = ClientConfig.load(tmp_path / "config.json")
    assert saved.service_address == "https://wats.example.com"


def _with_server(code: str, standin: StandinClient) -> str:
    for placeholder in ("https://your-server.wats.com",):
        code = code.replace(placeholder, standin.url)
    return code.replace("your_base64_token", standin.token)


@pytest.mark.e2e
@pytest.mark.skipif(sys.platform == "win32", reason="stops the snippet with SIGINT")
def test_readme_watsclient_snippet_uploads_a_file_and_stops_on_ctrl_c(
    tmp_path: Path, standin: StandinClient
) -> None:
    code = _with_server(_block_containing(_read(README), "python", "WATSClient(config)"), standin)
    assert standin.url in code and standin.token in code
    (tmp_path / "test_data").mkdir()
    source = SAMPLES / "wsjf" / "psu200_final_function.json"
    (tmp_path / "test_data" / source.name).write_bytes(source.read_bytes())
    (tmp_path / "snippet.py").write_text(code, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "snippet.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True)
    reader.start()
    try:
        wait_until(
            lambda: any(line.startswith("1 converted, 0 pending, 1 uploaded") for line in lines),
            60,
            message=lambda: f"the snippet printing the upload; it printed {lines[-3:]}",
        )
        assert [r["pn"] for r in standin.reports()] == ["PSU-200"]
        assert (tmp_path / "test_data" / "Done" / source.name).exists()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    reader.join(5)
    assert process.returncode == 0, err
    assert "Traceback" not in err, err


@pytest.mark.e2e
def test_readme_connection_and_queue_snippet_runs(tmp_path: Path, standin: StandinClient) -> None:
    station = tmp_path / "station-1"
    station.mkdir()
    config = {"service_address": standin.url, "api_token": standin.token}
    (station / "config.json").write_text(json.dumps(config), encoding="utf-8")
    code = _block_containing(_read(README), "python", "ConnectionService(config)")
    result = _run_snippet(code, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Connected to WATS "), result.stdout
    assert lines[1:] == ["Pending: 0", "Failed: 0"]


# --- command line help ----------------------------------------------------------------


def _commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((f"{prefix}{name}", sub))
                found += _commands(sub, f"{prefix}{name} ")
    return found


COMMANDS = _commands(build_parser())


def test_every_command_is_checked() -> None:
    names = {name for name, _ in COMMANDS}
    assert {"demo", "run", "supervise", "status", "stop", "queue list", "server"} <= names


@pytest.mark.parametrize(("name", "parser"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_command_help_shows_an_example(name: str, parser: argparse.ArgumentParser) -> None:
    text = parser.format_help()
    assert "example" in text.lower(), f"'pywats-client {name} --help' shows no example"
    assert f"pywats-client {name.split()[0]}" in text, f"'{name} --help' example names no command"


# --- links ----------------------------------------------------------------------------

_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    anchors = set()
    text = re.sub(r"^```.*?^```", "", _read(path), flags=re.S | re.M)
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        slug = heading.strip().lower()
        slug = re.sub(r"[^\w\- ]", "", slug).replace(" ", "-")
        anchors.add(slug)
    return anchors


DOC_FILES = [README, *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.name)
def test_relative_links_point_at_existing_files_and_headings(doc: Path) -> None:
    broken = []
    for target in _LINK.findall(_read(doc)):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto, file
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{doc.name}: broken links {broken}"


# --- service files --------------------------------------------------------------------


def _graceful_stop_seconds() -> float:
    from pywats_client.supervisor._supervisor import KILL_TIMEOUT

    return float(SupervisorSettings().stop_timeout) + KILL_TIMEOUT


def test_systemd_unit_stops_the_supervisor_gracefully() -> None:
    unit = _read(ROOT / "packaging" / "systemd" / "pywats-client.service")
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0] != "#"
    )
    assert settings["KillMode"] == "mixed"
    assert settings["Restart"] == "on-failure"
    assert float(settings["TimeoutStopSec"]) >= 3 * _graceful_stop_seconds()
    assert settings["User"] != "root"
    assert " supervise --registry " in settings["ExecStart"]
    assert "PYWATS_API_TOKEN" in unit


def test_winsw_config_stops_the_supervisor_gracefully() -> None:
    root = ET.parse(ROOT / "packaging" / "windows" / "pywats-client-service.xml").getroot()
    assert root.findtext("stopparentprocessfirst") == "true"
    timeout = root.findtext("stoptimeout") or ""
    assert float(timeout.split()[0]) >= 3 * _graceful_stop_seconds(), timeout
    assert root.findtext("executable", "").endswith("python.exe")
    assert "-m pywats_client supervise --registry" in root.findtext("arguments", "")


def test_nssm_script_waits_for_the_graceful_stop() -> None:
    script = _read(ROOT / "packaging" / "windows" / "install-nssm.cmd")
    wait = re.search(r"AppStopMethodConsole (\d+)", script)
    assert wait and int(wait.group(1)) / 1000 >= 3 * _graceful_stop_seconds()
    assert "-m pywats_client supervise --registry" in script
