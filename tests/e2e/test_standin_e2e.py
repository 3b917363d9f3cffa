"""The stand-in as tests use it: a real server process (pytest-xprocess), real HTTP."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from tests._standin import StandinClient, StandinError

pytestmark = pytest.mark.e2e


def make_report(**overrides: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "type": "T",
        "id": str(uuid.uuid4()),
        "pn": "PSU-200",
        "sn": "SN000123",
        "result": "P",
        "start": "2026-03-02T09:15:00+01:00",
        "root": {
            "stepType": "SequenceCall",
            "name": "MainSequence",
            "status": "P",
            "steps": [
                {
                    "stepType": "ET_NLT",
                    "name": "Vout",
                    "status": "P",
                    "numericMeas": [{"value": 5.02, "unit": "V", "compOp": "LOG"}],
                }
            ],
        },
    }
    report.update(overrides)
    return report


def test_submit_resubmit_auth_and_validation(standin: StandinClient) -> None:
    report = make_report()

    first = standin.submit(report)
    assert first.status_code == 200
    assert first.json() == {"ID": report["id"]}
    assert standin.reports() == [
        {
            "id": report["id"],
            "type": "T",
            "pn": "PSU-200",
            "sn": "SN000123",
            "result": "P",
            "times_received": 1,
        }
    ]

    again = standin.submit({**report, "result": "F"})
    assert again.status_code == 200
    (stored,) = standin.reports()
    assert stored["times_received"] == 2
    assert stored["result"] == "F"
    assert standin.report(report["id"]) == {**report, "result": "F"}

    wrong = standin.submit(make_report(), token="d3Jvbmc6dG9rZW4=")
    assert wrong.status_code == 401
    assert "token" in wrong.json()["Message"]

    invalid = standin.submit(make_report(sn=""))
    assert invalid.status_code == 400
    assert invalid.json()["Message"].startswith("sn: ")

    stats = standin.stats()
    assert stats["accepted"] == 2
    assert stats["rejected"] == 1
    assert stats["unauthorized"] == 1
    assert stats["distinct_reports"] == 1
    assert len(standin.reports()) == 1


def test_version_needs_the_token(standin: StandinClient) -> None:
    with httpx.Client(base_url=standin.url, trust_env=False) as http:
        assert http.get("/api/App/Version").status_code == 401
        answer = http.get("/api/App/Version", headers=standin.headers)
    assert answer.status_code == 200
    assert answer.json().endswith("-standin")


def test_faults_apply_to_api_and_clear(standin: StandinClient) -> None:
    standin.set_faults(status=503)
    assert standin.submit(make_report()).status_code == 503
    assert standin.reports() == []  # /standin/ still answers while /api fails

    standin.set_faults(status=429, retry_after=2)
    limited = standin.submit(make_report())
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"

    standin.set_faults(down=True)
    with pytest.raises(httpx.TransportError):
        standin.submit(make_report())

    standin.set_faults(latency_ms=300)
    began = time.monotonic()
    assert standin.submit(make_report()).status_code == 200
    assert time.monotonic() - began >= 0.3

    standin.set_faults(status=503, count=1)
    assert standin.submit(make_report()).status_code == 503
    assert standin.submit(make_report()).status_code == 200  # count used up: cleared

    standin.clear_faults()
    assert standin.submit(make_report()).status_code == 200
    stats = standin.stats()
    assert stats["faults_injected"] == 4
    assert stats["distinct_reports"] == 3
    assert stats["faults"] == {}

    with pytest.raises(StandinError, match="unknown fault key"):
        standin.set_faults(stauts=503)


def test_reset_gives_each_test_a_clean_server(standin: StandinClient) -> None:
    standin.submit(make_report())
    standin.set_faults(status=500, rate=0.5)
    standin.reset()
    assert standin.reports() == []
    stats = standin.stats()
    assert stats["accepted"] == 0
    assert stats["faults"] == {}


def test_private_server_keeps_reports_across_a_kill(standin_factory: Any) -> None:
    server = standin_factory()
    report = make_report()
    assert server.submit(report).status_code == 200  # 200 = committed to disk
    url = server.url
    server.kill()
    assert not server.is_up()
    server.start()
    assert server.url == url
    assert [r["id"] for r in server.reports()] == [report["id"]]
    assert server.stop() == 0
