"""The stand-in's endpoints: the WATS API the client uses, and ``/standin/`` controls.

``/api`` endpoints behave like a WATS server (same paths, auth header, status
codes and error bodies) and are subject to injected faults. ``/standin/``
endpoints exist for tests and the demo; they need the same token but faults
never apply to them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import Tag, ValidationError

from pywats_client.models import AnyStep, parse_report
from pywats_client.standin._faults import FaultDecision, FaultInjector, FaultPlan
from pywats_client.standin._http import Request, Response, json_response
from pywats_client.standin._store import ReportRecord, ReportStore

__all__ = ["DEFAULT_VERSION", "StandinApp", "Stats", "validation_message"]

DEFAULT_VERSION = "24.1.0-standin"
_WWW_AUTHENTICATE = ("WWW-Authenticate", 'Basic realm="WATS stand-in"')
_NOT_JSON = "request body is not valid JSON"


def _step_tags() -> frozenset[str]:
    """Tags of the step union; pydantic puts them in error paths, people don't want them."""
    args = get_args(AnyStep)
    union = args[0] if args else AnyStep
    return frozenset(
        meta.tag
        for member in get_args(union)
        for meta in get_args(member)[1:]
        if isinstance(meta, Tag)
    )


_STEP_TAGS = _step_tags()


def validation_message(error: ValidationError) -> str:
    """``"<field path>: <problem>"`` for the first problem, like a WATS 400 ``Message``."""
    problems = error.errors(include_url=False)
    first = problems[0]
    parts: list[str] = []
    previous: object = None
    for item in first["loc"]:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif not (isinstance(previous, int) and item in _STEP_TAGS):
            parts.append(f".{item}" if parts else str(item))
        previous = item
    path = "".join(parts) or "report"
    message = f"{path}: {first['msg']}"
    if len(problems) > 1:
        more = len(problems) - 1
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return message


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _submitted_id(request: Request) -> str | None:
    """The id of the report a WSJF submission carries, lower-case; None if none."""
    if request.path.lower() != "/api/report/wsjf":
        return None
    try:
        data = json.loads(_decode(request.body))
    except ValueError:
        return None
    report_id = data.get("id") if isinstance(data, dict) else None
    return report_id.lower() if isinstance(report_id, str) else None


def _decode(body: bytes) -> str:
    """The body as text: UTF-8, with or without a BOM (Windows tools often write one)."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{_NOT_JSON}: not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _load_json(text: str) -> Any:
    """Strict JSON (no NaN/Infinity); raises ValueError with a readable reason."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{_NOT_JSON}: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:
        raise ValueError(f"{_NOT_JSON}: {exc}") from None


def _message(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return json_response(status, {"Message": text}, headers)


@dataclass
class Stats:
    """Counters since start or the last reset."""

    requests: int = 0
    accepted: int = 0
    rejected: int = 0
    unauthorized: int = 0
    not_found: int = 0


class StandinApp:
    """Routes requests to handlers. Owns the counters; the store and faults are shared."""

    def __init__(
        self,
        store: ReportStore,
        token: str,
        *,
        version: str = DEFAULT_VERSION,
        faults: FaultInjector | None = None,
    ) -> None:
        self.store = store
        self.faults = faults or FaultInjector()
        self.stats = Stats()
        self.version = version
        self._expected = f"Basic {token}".encode()
        self._routes = {
            ("POST", "/api/report/wsjf"): self._submit_wsjf,
            ("POST", "/api/report/wsxf"): self._submit_wsxf,
            ("GET", "/api/app/version"): self._version,
            ("GET", "/standin/reports"): self._list_reports,
            ("GET", "/standin/stats"): self._get_stats,
            ("GET", "/standin/faults"): self._get_faults,
            ("POST", "/standin/faults"): self._set_faults,
            ("POST", "/standin/reset"): self._reset,
        }
        self._allowed: dict[str, list[str]] = {}
        #: Ids of submissions held back by a latency fault, not yet stored.
        self._arriving: Counter[str] = Counter()
        for method, path in self._routes:
            self._allowed.setdefault(path, []).append(method)

    def __repr__(self) -> str:
        return f"StandinApp(version={self.version!r}, token=***)"

    async def handle(self, request: Request) -> Response:
        """Answer one request (the connection layer's handler)."""
        if not request.path.startswith("/api/"):
            return await self._authorized(request)
        self.stats.requests += 1
        decision = self.faults.decide(request.path)
        if decision is None:
            return await self._authorized(request)
        if not decision.delay:
            return await self._faulted(request, decision)
        # A slow answer still commits. Until it does, its report counts as held for
        # new_only faults: a real server rejects the same report every time or never,
        # so a resubmission overtaking the slow first copy must not be rejected.
        report_id = _submitted_id(request)
        if report_id is not None:
            self._arriving[report_id] += 1
        try:
            await asyncio.sleep(decision.delay)
            return await self._faulted(request, decision)
        finally:
            if report_id is not None:
                self._arriving[report_id] -= 1
                if not self._arriving[report_id]:
                    del self._arriving[report_id]

    async def _faulted(self, request: Request, decision: FaultDecision) -> Response:
        if decision.drop:
            return Response(0, drop=True)
        if decision.status is not None:
            if decision.new_only and await self._holds_report(request):
                self.faults.injected -= 1  # spared: handled as usual
            else:
                return self._injected(decision.status, decision.retry_after, decision.message)
        return await self._authorized(request)

    async def _authorized(self, request: Request) -> Response:
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        return await self._dispatch(request)

    async def _holds_report(self, request: Request) -> bool:
        """Whether the report a submission carries is stored or arriving (``new_only``)."""
        report_id = _submitted_id(request)
        if report_id is None:
            return False
        return report_id in self._arriving or await self.store.get_body(report_id) is not None

    def _injected(self, status: int, retry_after: float | None, message: str | None) -> Response:
        headers: tuple[tuple[str, str], ...] = ()
        if retry_after is not None:
            seconds = int(retry_after) if float(retry_after).is_integer() else retry_after
            headers = (("Retry-After", str(seconds)),)
        return _message(status, message or f"injected fault: HTTP {status} (stand-in)", headers)

    def _check_auth(self, request: Request) -> Response | None:
        header = request.headers.get("authorization")
        if header is None:
            self.stats.unauthorized += 1
            return _message(
                401,
                "authorization required: send the header 'Authorization: Basic <token>'",
                (_WWW_AUTHENTICATE,),
            )
        if not hmac.compare_digest(header.encode("latin-1"), self._expected):
            self.stats.unauthorized += 1
            return _message(
                401,
                "the token is not valid for this server; check the api_token setting",
                (_WWW_AUTHENTICATE,),
            )
        return None

    async def _dispatch(self, request: Request) -> Response:
        key = request.path.lower()
        route = self._routes.get((request.method, key))
        if route is not None:
            return await route(request)
        if key.startswith("/api/report/wsjf/") and request.method == "GET":
            return await self._get_report(request.path[len("/api/report/wsjf/") :])
        allowed = self._allowed.get(key)
        if allowed:
            return _message(
                405,
                f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}",
                (("Allow", ", ".join(allowed)),),
            )
        self.stats.not_found += 1
        return _message(404, f"no such endpoint: {request.method} {request.path}")

    # --- WATS API ----------------------------------------------------------------

    async def _submit_wsjf(self, request: Request) -> Response:
        try:
            text = _decode(request.body)
            data = _load_json(text)
        except ValueError as exc:
            self.stats.rejected += 1
            return _message(400, str(exc))
        if not isinstance(data, dict):
            self.stats.rejected += 1
            return _message(400, f"report: expected a JSON object, got {type(data).__name__}")
        try:
            report = parse_report(data)
        except ValidationError as exc:
            self.stats.rejected += 1
            return _message(400, validation_message(exc))
        report_id = str(report.id).lower()
        record = ReportRecord(
            id=report_id,
            type=report.type,
            pn=report.pn,
            sn=report.sn,
            result=report.result,
            body=text,
        )
        await self.store.put(record)
        self.stats.accepted += 1
        return json_response(200, {"ID": report_id})

    async def _submit_wsxf(self, request: Request) -> Response:
        return _message(
            415,
            "this WATS stand-in accepts WSJF only: POST the report as JSON to /api/Report/WSJF",
        )

    async def _version(self, request: Request) -> Response:
        return json_response(200, self.version)

    async def _get_report(self, report_id: str) -> Response:
        body = await self.store.get_body(report_id.lower())
        if body is None:
            self.stats.not_found += 1
            return _message(404, f"no report with id {report_id!r}")
        return Response(200, body.encode("utf-8"))

    # --- /standin/ controls ----------------------------------------------------------

    async def _list_reports(self, request: Request) -> Response:
        return json_response(200, await self.store.list_reports())

    async def snapshot_stats(self) -> dict[str, Any]:
        distinct, received = await self.store.counts()
        return {
            "requests": self.stats.requests,
            "accepted": self.stats.accepted,
            "rejected": self.stats.rejected,
            "unauthorized": self.stats.unauthorized,
            "not_found": self.stats.not_found,
            "faults_injected": self.faults.injected,
            "delayed": self.faults.delayed,
            "distinct_reports": distinct,
            "total_received": received,
            "commits": self.store.commits,  # since start: shows group commit at work
            "faults": self.faults.plan.to_dict() if self.faults.plan.active else {},
        }

    async def _get_stats(self, request: Request) -> Response:
        return json_response(200, await self.snapshot_stats())

    async def _get_faults(self, request: Request) -> Response:
        plan = self.faults.plan
        return json_response(200, plan.to_dict() if plan.active else {})

    async def _set_faults(self, request: Request) -> Response:
        try:
            plan = FaultPlan.from_json(_load_json(_decode(request.body) or "{}"))
        except ValueError as exc:
            return _message(400, f"faults: {exc}")
        self.faults.set(plan)
        return json_response(200, plan.to_dict() if plan.active else {})

    async def _reset(self, request: Request) -> Response:
        """Forget stored reports, counters and faults (a clean slate for the next test)."""
        await self.store.clear()
        self.stats = Stats()
        self.faults.clear()
        self.faults.reset_counts()
        return json_response(200, {"reset": True})
