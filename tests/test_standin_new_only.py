"""The ``new_only`` fault: an injected 400 spares reports the server already holds.

The torture suite needs a server that rejects *some* reports the way a real
one would: a report that was accepted once (its 200 maybe lost on the way back)
is accepted again when resubmitted, never rejected.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pywats_client.standin._faults import FaultPlan, FaultSpecError
from pywats_client.standin._http import Request
from tests.test_standin_routes import AUTH, Harness, report


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def test_new_only_rejects_new_reports_and_accepts_known_ones(server: Harness) -> None:
    known, fresh = report(sn="KNOWN"), report(sn="FRESH")
    assert server.call("POST", "/api/Report/WSJF", known).status == 200
    server.json("POST", "/standin/faults", {"status": 400, "new_only": True, "message": "no"})

    again = server.call("POST", "/api/Report/WSJF", known)
    assert again.status == 200  # a resubmission of an accepted report is not rejected
    rejected = server.call("POST", "/api/Report/WSJF", fresh)
    assert (rejected.status, json.loads(rejected.body)["Message"]) == (400, "no")

    stats = server.json("GET", "/standin/stats")
    assert stats["faults_injected"] == 1  # the spared request is not counted
    assert [r["times_received"] for r in server.json("GET", "/standin/reports")] == [2]


def test_new_only_does_not_spare_other_paths(server: Harness) -> None:
    server.json("POST", "/standin/faults", {"status": 503, "new_only": True})
    assert server.call("GET", "/api/App/Version").status == 503


@pytest.mark.parametrize(
    ("body", "error"),
    [({"new_only": True}, "needs a status"), ({"status": 400, "new_only": 1}, "true or false")],
)
def test_new_only_is_validated(body: dict[str, object], error: str) -> None:
    with pytest.raises(FaultSpecError, match=error):
        FaultPlan.from_json(body)


def test_a_resubmission_overtaking_a_slow_first_copy_is_spared(server: Harness) -> None:
    """The slow fault commits late: a 400 for the retry meanwhile would reject a report the
    server is about to hold, which no real server does (the torture audit caught it)."""
    body = json.dumps(report(sn="SLOW")).encode()

    def submission() -> Request:
        return Request("POST", "/api/Report/WSJF", "", AUTH, body)

    async def overtaken() -> tuple[int, int]:
        server.app.faults.set(FaultPlan.from_json({"latency_ms": 300}))
        first = asyncio.ensure_future(server.app.handle(submission()))
        await asyncio.sleep(0.05)  # the first copy is in its delay, not stored yet
        server.app.faults.set(FaultPlan.from_json({"status": 400, "new_only": True}))
        retry = await server.app.handle(submission())
        return (await first).status, retry.status

    assert server.loop.run_until_complete(overtaken()) == (200, 200)
    assert [r["times_received"] for r in server.json("GET", "/standin/reports")] == [2]
