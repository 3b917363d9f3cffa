"""The stand-in's endpoints, called in-process (no sockets): auth, validation, faults, controls."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pywats_client.models import parse_report
from pywats_client.standin import ReportStore, StandinApp, validation_message
from pywats_client.standin._http import Request, Response

TOKEN = "c3RhbmRpbjpzZWNyZXQ="
AUTH = {"authorization": f"Basic {TOKEN}"}


def report(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "T", "id": str(uuid.uuid4()), "pn": "PN-1", "sn": "SN-1"}
    data.update(overrides)
    return data


class Harness:
    """Runs the app on one event loop for the whole test."""

    def __init__(self, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = ReportStore(data_dir)
        self.store.open()
        self.app = StandinApp(self.store, TOKEN)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        raw = (
            body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        )
        request = Request(method, path, "", AUTH if headers is None else headers, raw)
        return self.loop.run_until_complete(self.app.handle(request))

    def json(self, *args: Any, **kwargs: Any) -> Any:
        return json.loads(self.call(*args, **kwargs).body)

    def close(self) -> None:
        self.store.close()
        self.loop.close()


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def message(response: Response) -> str:
    text: str = json.loads(response.body)["Message"]
    return text


# --- auth ---------------------------------------------------------------------------------


def test_missing_and_wrong_token_are_401_without_echoing_it(h: Harness) -> None:
    missing = h.call("GET", "/api/App/Version", headers={})
    wrong = h.call("GET", "/api/App/Version", headers={"authorization": "Basic d3Jvbmc="})
    bearer = h.call("GET", "/api/App/Version", headers={"authorization": f"Bearer {TOKEN}"})
    for response in (missing, wrong, bearer):
        assert response.status == 401
        assert ("WWW-Authenticate", 'Basic realm="WATS stand-in"') in response.headers
        assert TOKEN.encode() not in response.body
        assert b"d3Jvbmc=" not in response.body
    assert "Authorization: Basic" in message(missing)
    assert "not valid" in message(wrong)
    assert h.json("GET", "/standin/stats")["unauthorized"] == 3


def test_standin_endpoints_need_the_token_too(h: Harness) -> None:
    assert h.call("GET", "/standin/reports", headers={}).status == 401
    assert h.call("POST", "/standin/reset", headers={}).status == 401


def test_token_is_not_in_the_apps_repr(h: Harness) -> None:
    assert TOKEN not in repr(h.app)


# --- WATS API --------------------------------------------------------------------------------


def test_version(h: Harness) -> None:
    response = h.call("GET", "/api/App/Version")
    assert response.status == 200
    assert json.loads(response.body) == "24.1.0-standin"


def test_paths_are_case_insensitive_like_wats(h: Harness) -> None:
    assert h.call("GET", "/api/app/version").status == 200
    assert h.call("POST", "/API/REPORT/WSJF", report()).status == 200


def test_submit_stores_and_answers_the_id(h: Harness) -> None:
    data = report(id="0B6C3A52-5F41-4D7E-9A57-2F1D8C4E9B10", result="F")
    response = h.call("POST", "/api/Report/WSJF", data)
    assert response.status == 200
    assert json.loads(response.body) == {"ID": "0b6c3a52-5f41-4d7e-9a57-2f1d8c4e9b10"}
    stored = h.call("GET", "/api/Report/Wsjf/0b6c3a52-5f41-4d7e-9a57-2f1d8c4e9b10")
    assert stored.status == 200
    assert json.loads(stored.body) == data
    (listed,) = h.json("GET", "/standin/reports")
    assert listed["result"] == "F"
    assert listed["times_received"] == 1


def test_resubmission_replaces_and_counts(h: Harness) -> None:
    data = report()
    h.call("POST", "/api/Report/WSJF", data)
    h.call("POST", "/api/Report/WSJF", {**data, "sn": "SN-2"})
    (listed,) = h.json("GET", "/standin/reports")
    assert (listed["sn"], listed["times_received"]) == ("SN-2", 2)
    stats = h.json("GET", "/standin/stats")
    assert (stats["accepted"], stats["distinct_reports"], stats["total_received"]) == (2, 1, 2)


def test_unknown_report_is_404(h: Harness) -> None:
    response = h.call("GET", f"/api/Report/Wsjf/{uuid.uuid4()}")
    assert response.status == 404
    assert "no report with id" in message(response)


def test_repair_reports_are_accepted(h: Harness) -> None:
    data = report(type="R", uur={"user": "tech1", "refUUT": str(uuid.uuid4())})
    assert h.call("POST", "/api/Report/WSJF", data).status == 200
    assert h.json("GET", "/standin/reports")[0]["type"] == "R"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (report(pn=""), "pn: String should have at least 1 character"),
        ({"type": "T", "pn": "A"}, "sn: Field required"),
        (report(result="Q"), "result: Input should be"),
        (
            report(
                root={
                    "stepType": "SequenceCall",
                    "name": "Main",
                    "steps": [{"stepType": "ET_NLT", "name": "V", "numericMeas": [{"value": "x"}]}],
                }
            ),
            "root.steps[0].numericMeas[0].value: Input should be a valid number",
        ),
        ([report()], "report: expected a JSON object, got list"),
        (b'{"pn": "A",', "request body is not valid JSON: Expecting property name"),
        (b'{"pn": NaN}', "request body is not valid JSON: NaN is not valid JSON"),
        (b"\xff\xfe{}", "request body is not valid JSON: not UTF-8"),
        (b"", "request body is not valid JSON"),
    ],
)
def test_invalid_reports_are_400_naming_the_field(h: Harness, body: Any, expected: str) -> None:
    response = h.call("POST", "/api/Report/WSJF", body)
    assert response.status == 400
    assert message(response).startswith(expected)
    assert h.json("GET", "/standin/reports") == []
    assert h.json("GET", "/standin/stats")["rejected"] == 1


def test_more_problems_are_counted_in_the_message(h: Harness) -> None:
    response = h.call("POST", "/api/Report/WSJF", {"type": "T"})
    assert message(response) == "pn: Field required (and 1 more problem)"


def test_utf8_bom_is_accepted(h: Harness) -> None:
    body = b"\xef\xbb\xbf" + json.dumps(report()).encode()
    assert h.call("POST", "/api/Report/WSJF", body).status == 200


def test_wsxf_is_refused_with_a_clear_message(h: Harness) -> None:
    response = h.call("POST", "/api/Report/WSXF", b"<Reports/>")
    assert response.status == 415
    assert "WSJF only" in message(response)


def test_unknown_path_is_404_and_wrong_method_405(h: Harness) -> None:
    assert h.call("GET", "/api/Nope").status == 404
    wrong = h.call("GET", "/api/Report/WSJF")
    assert wrong.status == 405
    assert ("Allow", "POST") in wrong.headers


class TemporaryHarness:
    """A harness outside pytest fixtures (hypothesis runs the test body many times)."""

    def __enter__(self) -> Harness:
        self._dir = tempfile.TemporaryDirectory()
        self.harness = Harness(Path(self._dir.name))
        return self.harness

    def __exit__(self, *exc: object) -> None:
        self.harness.close()
        self._dir.cleanup()


_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["P", "F", "R", "T", str(uuid.uuid4())]),
)


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["pn", "sn", "result", "type", "processCode", "id", "start"]),
        _JSON_SCALARS,
    )
)
def test_validation_answer_matches_the_model(data: dict[str, Any]) -> None:
    """The stand-in accepts exactly what parse_report accepts, and names the field otherwise."""
    expected = None
    try:
        parse_report(data)
    except ValidationError as exc:
        expected = validation_message(exc)
    with TemporaryHarness() as harness:
        response = harness.call("POST", "/api/Report/WSJF", data)
    if expected is None:
        assert response.status == 200
    else:
        assert response.status == 400
        assert message(response) == expected


# --- faults and controls ---------------------------------------------------------------------


def test_status_fault_replaces_the_answer_and_stores_nothing(h: Harness) -> None:
    assert (
        h.call("POST", "/standin/faults", {"status": 503, "message": "maintenance"}).status == 200
    )
    response = h.call("POST", "/api/Report/WSJF", report())
    assert response.status == 503
    assert message(response) == "maintenance"
    assert h.json("GET", "/standin/reports") == []
    stats = h.json("GET", "/standin/stats")
    assert stats["faults_injected"] == 1
    assert stats["faults"]["status"] == 503


def test_faults_apply_before_auth_like_a_broken_server(h: Harness) -> None:
    h.call("POST", "/standin/faults", {"status": 502})
    assert h.call("GET", "/api/App/Version", headers={}).status == 502


def test_retry_after_header(h: Harness) -> None:
    h.call("POST", "/standin/faults", {"status": 429, "retry_after": 1.5})
    assert ("Retry-After", "1.5") in h.call("GET", "/api/App/Version").headers


def test_down_fault_drops_the_request(h: Harness) -> None:
    h.call("POST", "/standin/faults", {"down": True})
    assert h.call("POST", "/api/Report/WSJF", report()).drop
    assert h.call("GET", "/standin/stats").status == 200  # controls keep working


def test_latency_fault_delays_api_answers_only(h: Harness) -> None:
    # a long latency, so "not delayed" has a wide margin on a busy machine
    h.call("POST", "/standin/faults", {"latency_ms": 800})
    began = time.monotonic()
    h.call("GET", "/standin/stats")
    assert time.monotonic() - began < 0.7
    began = time.monotonic()
    assert h.call("GET", "/api/App/Version").status == 200
    assert time.monotonic() - began >= 0.8


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "faults: request body is not valid JSON"),
        ({"bogus": 1}, "faults: unknown fault key(s) 'bogus'"),
        ({"status": 200}, "faults: status: 200 is out of range"),
    ],
)
def test_bad_fault_requests_are_400(h: Harness, body: Any, reason: str) -> None:
    response = h.call("POST", "/standin/faults", body)
    assert response.status == 400
    assert message(response).startswith(reason)


def test_empty_fault_body_clears(h: Harness) -> None:
    h.call("POST", "/standin/faults", {"status": 500})
    assert h.json("POST", "/standin/faults", b"") == {}
    assert h.json("GET", "/standin/faults") == {}
    assert h.call("GET", "/api/App/Version").status == 200


def test_reset_clears_reports_counters_and_faults(h: Harness) -> None:
    h.call("POST", "/api/Report/WSJF", report())
    h.call("POST", "/api/Report/WSJF", report(sn=""))
    h.call("POST", "/standin/faults", {"latency_ms": 1})
    assert h.json("POST", "/standin/reset") == {"reset": True}
    stats = h.json("GET", "/standin/stats")
    assert stats["accepted"] == stats["rejected"] == stats["requests"] == 0
    assert stats["distinct_reports"] == 0
    assert stats["faults"] == {}
    assert h.json("GET", "/standin/reports") == []
