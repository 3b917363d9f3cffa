"""Names loaded on first use, and what each spawned process imports because of it."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from pywats_client._lazy import lazy_exports
from tests.helpers import installed_script, run_fresh

#: What pip writes as the ``pywats-client`` script (used when it is not installed).
_SCRIPT = """import sys
from pywats_client.cli import main
if __name__ == '__main__':
    sys.exit(main())
"""


def _package(where: dict[str, str]) -> types.ModuleType:
    package = types.ModuleType("fake_package")
    package.__all__ = [*where, "eager"]  # type: ignore[attr-defined]
    package.eager = 1  # type: ignore[attr-defined]
    package.__getattr__, package.__dir__ = lazy_exports(vars(package), where)  # type: ignore[method-assign]
    return package


def test_a_name_is_imported_on_first_use_and_kept() -> None:
    package = _package({"dumps": "json", "encode": "json:dumps"})
    assert "dumps" not in vars(package)
    import json

    assert package.dumps is json.dumps
    assert vars(package)["dumps"] is json.dumps  # kept: the next use is a plain lookup
    assert package.encode is json.dumps  # an alias names the module's own attribute


def test_an_unknown_name_says_which_module_lacks_it() -> None:
    package = _package({"dumps": "json"})
    with pytest.raises(AttributeError, match="module 'fake_package' has no attribute 'dump'"):
        _ = package.dump


def test_dir_lists_the_lazy_names_before_they_are_loaded() -> None:
    package = _package({"dumps": "json"})
    package.__all__ = ["eager"]  # type: ignore[attr-defined]
    assert {"dumps", "eager"} <= set(dir(package))


def test_spawned_processes_import_only_what_they_use(tmp_path: Path) -> None:
    """On POSIX, every worker and upload helper runs the ``pywats-client`` script again
    as its ``__mp_main__`` (multiprocessing's spawn does), so what the script and the
    helper import is paid once per process: neither the command's rich output nor the
    watcher and queue, which a helper never uses."""
    script = installed_script() if sys.platform != "win32" else None
    if script is None:
        script = tmp_path / "pywats-client"
        script.write_text(_SCRIPT)
    code = (
        "import runpy, sys\n"
        f"runpy.run_path({str(script)!r}, run_name='__mp_main__')\n"
        "import pywats_client.services._upload_helper\n"
        "heavy = [m for m in ('rich', 'pywats_client.cli._main', 'watchdog',"
        " 'pywats_client.queue', 'pywats_client.services.file_watcher') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    run_fresh(code)
