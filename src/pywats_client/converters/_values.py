"""Strict parsing of the scalar values test files hold (numbers, statuses, times).

Every function raises ``ValueError`` with a message that quotes the bad value;
converters add the file and line and turn it into a ``ConversionError``. Being
strict here is deliberate: a value silently read as something else becomes a
wrong test record, which is worse than a file in the error folder.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

from pywats_client.models import StepStatus

__all__ = [
    "parse_bool",
    "parse_datetime",
    "parse_float",
    "parse_int",
    "parse_report_result",
    "parse_step_status",
    "step_status_or_none",
]

_STEP_STATUS_WORDS: dict[str, StepStatus] = {
    "p": "P",
    "pass": "P",
    "passed": "P",
    "ok": "P",
    "f": "F",
    "fail": "F",
    "failed": "F",
    "ng": "F",
    "nok": "F",
    "s": "S",
    "skip": "S",
    "skipped": "S",
    "notstarted": "S",
    "d": "D",
    "done": "D",
    "e": "E",
    "error": "E",
    "errored": "E",
    "t": "T",
    "terminated": "T",
    "aborted": "T",
}

_BOOL_WORDS = {
    "true": True,
    "yes": True,
    "y": True,
    "1": True,
    "pass": True,
    "passed": True,
    "ok": True,
    "p": True,
    "false": False,
    "no": False,
    "n": False,
    "0": False,
    "fail": False,
    "failed": False,
    "f": False,
    "ng": False,
}

_ISO = re.compile(
    r"""^(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})
        (?:[T ](?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?
        \s*(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?$""",
    re.VERBOSE | re.IGNORECASE,
)


def parse_float(text: str, *, decimal_comma: bool = False) -> float:
    """A finite number; ``decimal_comma`` also accepts ``4,95``."""
    cleaned = text.strip()
    if decimal_comma:
        cleaned = cleaned.replace(",", ".")
    if not cleaned or "_" in cleaned:
        raise ValueError(f"{text!r} is not a number")
    try:
        value = float(cleaned)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_int(text: str) -> int:
    cleaned = text.strip()
    if not re.fullmatch(r"[+-]?\d{1,18}", cleaned):
        raise ValueError(f"{text!r} is not a whole number")
    return int(cleaned)


def parse_bool(text: str) -> bool:
    """true/false, yes/no, 1/0, pass/fail (any case)."""
    try:
        return _BOOL_WORDS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"{text!r} is not a yes/no value (use true/false or pass/fail)") from None


def step_status_or_none(text: str) -> StepStatus | None:
    return _STEP_STATUS_WORDS.get(re.sub(r"[\s_-]", "", text).lower())


def parse_step_status(text: str) -> StepStatus:
    """Passed/Failed/Skipped/Done/Error/Terminated, a WSJF letter, or a common synonym."""
    status = step_status_or_none(text)
    if status is None:
        raise ValueError(
            f"{text!r} is not a status (use Passed, Failed, Skipped, Done, Error or Terminated)"
        )
    return status


def parse_report_result(text: str) -> str:
    """A report result letter P/F/E/T/D (skipped is not a result a unit can have)."""
    status = step_status_or_none(text)
    if status is None or status == "S":
        raise ValueError(f"{text!r} is not a result (use Passed, Failed, Error or Terminated)")
    return status


def parse_datetime(text: str) -> datetime:
    """ISO 8601 date-time (``T`` or space, any fraction length, ``Z`` or offset).

    A time without an offset stays naive: the report model reads it as the
    station's local time, which is what testers write.
    """
    match = _ISO.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a date-time (write it as 2026-03-01T09:15:00+01:00)")
    parts = match.groupdict()
    if not 1900 <= int(parts["y"]) <= 2999:
        raise ValueError(f"{text!r} has an implausible year")
    fraction = (parts["f"] or "0")[:6].ljust(6, "0")
    tz = parts["tz"]
    tzinfo: timezone | None = None
    if tz:
        if tz.upper() == "Z":
            tzinfo = timezone.utc
        else:
            sign = -1 if tz[0] == "-" else 1
            digits = tz[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
            if hours > 23 or minutes > 59:
                raise ValueError(f"{text!r} has an invalid UTC offset")
            tzinfo = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return datetime(
            int(parts["y"]),
            int(parts["mo"]),
            int(parts["d"]),
            int(parts["h"] or 0),
            int(parts["mi"] or 0),
            int(parts["s"] or 0),
            int(fraction),
            tzinfo=tzinfo,
        )
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date-time ({exc})") from None
