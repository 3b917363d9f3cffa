"""Shared fixtures.

Stand-in WATS server (``pywats_client.standin``), for tests that need a server:

``standin``
    A :class:`tests._standin.StandinClient` for one real server process shared by
    the whole session (started with pytest-xprocess on the first use:
    ``pywats-client server --port 0 --port-file ... --token ... --data ...``).
    It is reset before each test that uses it: no reports, zeroed counters, no
    faults. Use ``standin.url`` / ``standin.token`` in a client config, then
    ``standin.reports()``, ``standin.wait_for_reports(n)``, ``standin.stats()``,
    ``standin.report(id)``, ``standin.set_faults(status=503, rate=0.3)`` /
    ``set_faults(down=True)`` / ``set_faults(status=429, retry_after=1, count=2)``,
    ``standin.clear_faults()``, ``standin.reset()``, ``standin.submit(report)``.
    Do not stop this server; tests that need that use ``standin_factory``.

``standin_factory``
    Call it to get a :class:`tests._standin.PrivateStandin`: a started server
    process of this test's own, with its own data folder, which the test may
    ``stop()``, ``kill()``, ``start()`` again (same port, same stored reports)
    or ``restart()``. Every private server is stopped when the test ends.
    ``standin_factory(start=False)`` returns it unstarted.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from xprocess import ProcessStarter

from pywats_client.standin import generate_token
from tests._standin import PrivateStandin, StandinClient
from tests.helpers import wait_until


def pytest_configure(config: pytest.Config) -> None:
    """Let the processes the tests start be stopped with Ctrl+C.

    A shell starts background jobs (``cmd &``, CI runners that do so) with
    SIGINT ignored, and children inherit that: the tests that stop a
    supervisor, the demo or a README snippet with SIGINT would then wait in
    vain. Ignoring it stays a choice of whoever starts the product; here the
    suite restores Python's default before it starts anything.
    """
    if sys.platform != "win32" and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def _standin_session(
    xprocess: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StandinClient]:
    root = tmp_path_factory.mktemp("standin")
    port_file = root / "port"
    token = generate_token()
    # One name per pytest process: engineers running pytest at the same time in
    # this tree share xprocess's folder, and must not adopt each other's server.
    name = f"pywats-standin-{os.getpid()}"

    class Starter(ProcessStarter):  # type: ignore[misc]
        pattern = "listening on http://"
        timeout = 60
        terminate_on_interrupt = True
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        args = [
            sys.executable,
            "-m",
            "pywats_client",
            "server",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--token",
            token,
            "--data",
            str(root / "data"),
            "--parent-pid",  # never outlive this pytest run, even if it is killed
            str(os.getpid()),
        ]

    xprocess.ensure(name, Starter)
    port = wait_until(lambda: port_file.read_text().strip(), 30, message=f"port file {port_file}")
    client = StandinClient(f"http://127.0.0.1:{port}", token)
    try:
        yield client
    finally:
        client.close()
        info = xprocess.getinfo(name)
        info.terminate()
        shutil.rmtree(info.controldir, ignore_errors=True)


@pytest.fixture
def standin(_standin_session: StandinClient) -> StandinClient:
    """The session's stand-in server, reset for this test (see the module docstring)."""
    _standin_session.reset()
    return _standin_session


@pytest.fixture
def standin_factory(tmp_path: Path) -> Iterator[Callable[..., PrivateStandin]]:
    """Makes private stand-in servers for this test (see the module docstring)."""
    made: list[PrivateStandin] = []

    def make(*, start: bool = True, token: str | None = None) -> PrivateStandin:
        server = PrivateStandin(tmp_path / f"standin-{len(made)}", token or generate_token())
        made.append(server)
        return server.start() if start else server

    yield make
    for server in made:
        server.stop()
        server.close()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo what a test's ``configure_logging`` did to the root logger.

    Without this, one test's INFO level and file handlers leak into every later
    test (log records then pile up in pytest's capture and skew memory checks).
    """
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    chatty = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name, old in chatty.items():
        logging.getLogger(name).setLevel(old)
