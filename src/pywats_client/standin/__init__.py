"""A local WATS-compatible server for the demo, tests and benchmarks.

It answers the WATS endpoints the client uses (``POST /api/Report/WSJF``,
``GET /api/App/Version``, ``GET /api/Report/Wsjf/{id}``) with the real auth
header and status codes, validates reports like the server does (400 with the
field at fault), stores what it accepts durably in SQLite, and injects faults
on command under ``/standin/``. Three ways to run it::

    async with StandinServer(token="abc") as server:      # in an asyncio program
        print(server.url)

    with ServerThread(StandinServer()) as server:          # in-process, sync code
        print(server.url, server.token)

    with StandinProcess(data_dir, token="abc") as proc:    # a child process
        print(proc.url)

or from a shell: ``pywats-client server --port 0 --port-file port.txt``.
"""

from pywats_client.standin._faults import FaultInjector, FaultPlan, FaultSpecError
from pywats_client.standin._http import DEFAULT_MAX_BODY
from pywats_client.standin._process import TOKEN_ENV_VAR, StandinProcess
from pywats_client.standin._routes import DEFAULT_VERSION, StandinApp, validation_message
from pywats_client.standin._server import StandinServer, generate_token, run
from pywats_client.standin._store import ReportRecord, ReportStore
from pywats_client.standin._thread import ServerThread

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_VERSION",
    "TOKEN_ENV_VAR",
    "FaultInjector",
    "FaultPlan",
    "FaultSpecError",
    "ReportRecord",
    "ReportStore",
    "ServerThread",
    "StandinApp",
    "StandinProcess",
    "StandinServer",
    "generate_token",
    "run",
    "validation_message",
]
