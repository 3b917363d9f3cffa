"""Fault plans: what ``POST /standin/faults`` accepts and what each plan does to requests."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywats_client.standin import FaultInjector, FaultPlan, FaultSpecError


def injector(**spec: Any) -> FaultInjector:
    faults = FaultInjector()
    faults.set(FaultPlan.from_json(spec))
    return faults


def test_empty_plan_injects_nothing() -> None:
    faults = injector()
    assert not faults.plan.active
    assert faults.decide("/api/Report/WSJF") is None
    assert faults.injected == 0


def test_status_fault_with_retry_after() -> None:
    decision = injector(status=429, retry_after=1).decide("/api/Report/WSJF")
    assert decision is not None
    assert (decision.status, decision.retry_after, decision.drop) == (429, 1.0, False)


def test_down_drops_and_latency_delays() -> None:
    decision = injector(down=True, latency_ms=250).decide("/api/App/Version")
    assert decision is not None
    assert decision.drop and decision.status is None
    assert decision.delay == pytest.approx(0.25)


def test_latency_alone_delays_without_failing() -> None:
    faults = injector(latency_ms=10)
    decision = faults.decide("/api/Report/WSJF")
    assert decision is not None and not decision.fails
    assert (faults.injected, faults.delayed) == (0, 1)


def test_faults_never_touch_standin_paths_and_respect_paths() -> None:
    faults = injector(status=503, paths=["/api/Report/"])
    assert faults.decide("/standin/reports") is None
    assert faults.decide("/api/App/Version") is None
    assert faults.decide("/api/Report/WSJF") is not None


def test_rate_is_repeatable_with_a_seed_and_roughly_right() -> None:
    outcomes = []
    for _ in range(2):
        faults = injector(status=503, rate=0.3, seed=7)
        outcomes.append([faults.decide("/api/x") is not None for _ in range(1000)])
    assert outcomes[0] == outcomes[1]
    assert 220 < sum(outcomes[0]) < 380


def test_rate_zero_never_fires() -> None:
    faults = injector(status=500, rate=0)
    assert all(faults.decide("/api/x") is None for _ in range(100))


def test_count_clears_the_plan_after_that_many_hits() -> None:
    faults = injector(status=503, count=2)
    assert [faults.decide("/api/x") is not None for _ in range(4)] == [True, True, False, False]
    assert not faults.plan.active
    assert faults.injected == 2


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"stauts": 503}, "unknown fault key(s) 'stauts'"),
        ({"status": 200}, "status: 200 is out of range 400..599"),
        ({"status": True}, "status: expected an integer"),
        ({"status": "503"}, "status: expected an integer"),
        ({"status": 503, "rate": 1.5}, "rate: 1.5 is out of range"),
        ({"down": "yes"}, "down: expected true or false"),
        ({"down": True, "status": 503}, "down and status cannot be combined"),
        ({"retry_after": 1}, "retry_after needs a status"),
        ({"latency_ms": -1}, "latency_ms: -1 is out of range"),
        ({"status": 503, "count": 0}, "count: 0 is out of range"),
        ({"status": 503, "paths": ["/standin/"]}, "paths: expected a list of prefixes under /api/"),
        ([503], "expected a JSON object"),
    ],
)
def test_malformed_plans_are_refused_with_the_reason(spec: Any, reason: str) -> None:
    with pytest.raises(FaultSpecError) as caught:
        FaultPlan.from_json(spec)
    assert reason in str(caught.value)


@given(
    st.dictionaries(
        st.sampled_from(["status", "rate", "retry_after", "down", "latency_ms", "count", "x"]),
        st.one_of(st.none(), st.booleans(), st.integers(-5, 700), st.floats(), st.text(max_size=3)),
        max_size=4,
    )
)
def test_any_json_object_is_a_plan_or_a_clear_refusal(spec: dict[str, Any]) -> None:
    try:
        plan = FaultPlan.from_json(spec)
    except FaultSpecError as exc:
        assert str(exc)
        return
    if plan.status is not None:
        assert 400 <= plan.status <= 599
    assert 0 <= plan.rate <= 1
    assert plan.latency_ms >= 0
    FaultInjector(plan).decide("/api/Report/WSJF")


def test_injector_built_with_a_plan_honours_its_count() -> None:
    faults = FaultInjector(FaultPlan(status=500, count=1))
    assert faults.decide("/api/x") is not None
    assert faults.decide("/api/x") is None
