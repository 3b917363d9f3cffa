"""The WSJF reports every scenario sends: one small realistic report, and padded ones.

Each report gets a fresh id, as each real test result does, so the server
stores every one (a repeated id would be a replacement, not a new report).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

__all__ = ["report_json", "sized_report", "small_report"]

_NUMERIC_STEP: dict[str, Any] = {
    "id": 1,
    "group": "M",
    "stepType": "ET_NLT",
    "name": "Vout",
    "status": "P",
    "numericMeas": [
        {
            "value": 5.02,
            "unit": "V",
            "compOp": "GELE",
            "lowLimit": 4.9,
            "highLimit": 5.1,
            "status": "P",
        }
    ],
}


def small_report(sn: str) -> dict[str, Any]:
    """A UUT report with one numeric step: about 500 bytes of JSON."""
    return {
        "type": "T",
        "id": str(uuid.uuid4()),
        "pn": "PSU-200",
        "sn": sn,
        "rev": "B",
        "processCode": 10,
        "processName": "Final Function",
        "result": "P",
        "machineName": "bench-st1",
        "start": "2026-03-02T09:15:00+01:00",
        "uut": {"user": "op7", "execTime": 12.4},
        "root": {
            "id": 0,
            "group": "M",
            "stepType": "SequenceCall",
            "name": "MainSequence",
            "status": "P",
            "steps": [_NUMERIC_STEP],
        },
    }


def sized_report(sn: str, size: int) -> dict[str, Any]:
    """A valid report padded with numeric steps to about ``size`` bytes of JSON."""
    report = small_report(sn)
    base = len(json.dumps(report))
    step_len = len(json.dumps(_pad_step(1000))) + 2
    report["root"]["steps"] = [_pad_step(i) for i in range(max(1, (size - base) // step_len))]
    return report


def _pad_step(i: int) -> dict[str, Any]:
    return {
        "stepType": "ET_NLT",
        "name": f"V{i}",
        "status": "P",
        "numericMeas": [{"value": 5.0 + i / 1000, "unit": "V", "compOp": "LOG"}],
    }


def report_json(sn: str) -> bytes:
    """:func:`small_report` as the bytes of a ``.json`` result file."""
    return json.dumps(small_report(sn)).encode()
