"""The control request parser (any JSON in, a Request or BadRequest out) and the goal judge."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywats_client.control._commands import judge
from pywats_client.control._protocol import (
    COMMANDS,
    MAX_WAIT,
    BadRequest,
    Request,
    decode,
    encode,
    parse_request,
)
from pywats_client.control._results import ControlResult, InstanceResult
from pywats_client.supervisor import State

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
requestish = st.fixed_dictionaries(
    {},
    optional={
        "protocol": st.sampled_from([1, 2, "1", None]),
        "command": st.sampled_from([*COMMANDS, "format", 3]),
        "names": st.lists(st.text(max_size=5), max_size=3) | json_values,
        "all": st.booleans() | json_values,
        "wait": st.floats(allow_nan=True) | st.integers() | json_values,
    },
)


@given(json_values | requestish)
def test_any_value_parses_or_is_a_bad_request(value: Any) -> None:
    try:
        request = parse_request(value)
    except BadRequest as exc:
        assert str(exc)
        return
    assert request.command in COMMANDS
    assert 0 <= request.wait <= MAX_WAIT
    assert all(isinstance(n, str) and n for n in request.names)
    assert parse_request(request.to_json()) == request


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_are_a_bad_request(payload: bytes) -> None:
    try:
        value = decode(payload)
    except BadRequest:
        return
    assert value == json.loads(payload.decode("utf-8"))


def test_a_request_round_trips_and_duplicate_names_collapse() -> None:
    request = parse_request(
        decode(encode(Request("restart", ("a", "b"), False, 5).to_json()) + b"")
    )
    assert request == Request("restart", ("a", "b"), False, 5.0)
    dup = {"protocol": 1, "command": "stop", "names": ["a", "b", "a"]}
    assert parse_request(dup).names == ("a", "b")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"protocol": 1, "command": "stop", "names": ["a"], "all": True}, "not both"),
        ({"protocol": 1, "command": "reload", "names": ["a"]}, "takes no instance names"),
        ({"protocol": 1, "command": "ping", "wait": float("inf")}, "'wait'"),
        ({"protocol": 1, "command": "ping", "wait": True}, "'wait'"),
        ({"protocol": 1, "command": "stop", "names": [""]}, "not an instance name"),
        ({"protocol": 1, "command": "stop", "names": ["x" * 201]}, "not an instance name"),
    ],
)
def test_bad_requests_say_why(value: dict[str, Any], problem: str) -> None:
    with pytest.raises(BadRequest, match=problem):
        parse_request(value)


def rec(state: str, pid: int | None, **more: Any) -> dict[str, Any]:
    return {"name": "a", "state": state, "pid": pid, "enabled": True, "restarts": 0, **more}


@pytest.mark.parametrize(
    ("command", "before", "now", "allowed", "expected"),
    [
        ("stop", rec("running", 1), rec("stopping", 1), 0, (False, None)),
        ("stop", rec("running", 1), rec("stopped", None), 0, (True, None)),
        ("stop", rec("fatal", None), rec("fatal", None), 0, (True, None)),
        ("restart", rec("running", 1), rec("running", 1), 1, (False, None)),
        ("restart", rec("running", 1), rec("starting", 2), 1, (False, None)),
        ("restart", rec("running", 1), rec("running", 2), 1, (True, None)),
        ("restart", rec("running", 1), rec("paused", 2), 1, (True, None)),
        ("restart", rec("running", 1), rec("backoff", None, restarts=1), 1, (False, None)),
        ("start", rec("stopped", None), rec("running", 3), 0, (True, None)),
        ("start", rec("running", 3), rec("running", 3), 0, (True, None)),
    ],
)
def test_judge_goals(
    command: str,
    before: dict[str, Any],
    now: dict[str, Any],
    allowed: int,
    expected: tuple[bool, str | None],
) -> None:
    assert judge(command, before, now, allowed) == expected


def test_judge_gives_up_with_the_reason() -> None:
    crashed = rec("backoff", None, restarts=2, last_error="worker exited with code 1")
    done, note = judge("restart", rec("running", 1), crashed, 1)
    assert not done and note == "worker exited: worker exited with code 1; retrying"
    fatal = rec("fatal", None, last_error="config.json: bad key")
    assert judge("start", rec("stopped", None), fatal, 0) == (False, "fatal: config.json: bad key")
    disabled = rec("disabled", None, enabled=False)
    assert judge("start", disabled, disabled, 0)[1] == (
        "disabled in the registry; set enabled = true first"
    )
    assert judge("stop", rec("running", 1), None, 0) == (
        False,
        "removed from the registry meanwhile",
    )


def test_judge_pause_waits_for_the_workers_confirmation() -> None:
    before = rec("running", 1, paused=False, snapshot={"uploads": "uploading"})
    unconfirmed = rec("paused", 1, paused=True, snapshot={"uploads": "uploading"})
    confirmed = rec("paused", 1, paused=True, snapshot={"uploads": "paused"})
    assert judge("pause", before, unconfirmed, 0) == (False, None)
    assert judge("pause", before, confirmed, 0) == (True, None)
    assert judge("resume", confirmed, rec("running", 1, paused=False, snapshot=None), 0) == (
        True,
        None,
    )
    assert judge(
        "resume", confirmed, rec("running", 1, paused=False, snapshot={"uploads": "paused"}), 0
    ) == (False, None)


def test_results_round_trip_through_json() -> None:
    result = ControlResult(
        "restart",
        (
            InstanceResult(
                "a", State.RUNNING, True, pid=5, previous_state=State.RUNNING, previous_pid=4
            ),
            InstanceResult("b", State.BACKOFF, False, note="worker exited"),
        ),
    )
    again = ControlResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    assert not again.ok and again["a"].pid == 5 and len(again) == 2
    with pytest.raises(KeyError):
        again["zz"]
    odd = InstanceResult.from_dict({"name": "x", "state": "exploded", "pid": True})
    assert odd.state is State.NOT_RUNNING and odd.pid is None
