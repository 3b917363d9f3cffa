"""The audit that ends every torture run: where did every dropped file end up?

It reads the disk and the server's list of reports on its own terms (plain
JSON and folder listings, not the product's queue code), so a bug in the
product cannot hide itself from it. Rules:

- every valid file maps to exactly one accepted report (the id its converter
  must derive), or sits in ``failed/`` with the server's reason; never both,
  never neither ("lost"), never anywhere else;
- every bad file is in its Error folder with a ``.error.txt`` reason;
- every corrupt file planted in a queue is in ``quarantine/`` with a reason;
- no temp files, no unfinished intake journals;
- no token in any file but the station configs;
- every queue, state, log and config file owner-only (files 0600, folders 0700).

Anything still waiting (pending, still in a watch folder) is "stuck".
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from pywats_client._fsutil import TEMP_SUFFIX
from tests._torture._inputs import Dropped

__all__ = ["AuditResult", "Planted", "StationLayout", "audit", "find_orphans"]

#: Environment variable that tags every process of one torture run.
RUN_TAG_ENV = "TORTURE_RUN_TAG"
_SCAN_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class StationLayout:
    """Where one station keeps things (all absolute)."""

    name: str
    config: Path
    watch: Path
    queue: Path

    @property
    def done(self) -> Path:
        return self.watch / "Done"

    @property
    def error(self) -> Path:
        return self.watch / "Error"


@dataclass(frozen=True)
class Planted:
    """A corrupt file the torture put into a queue's ``pending/`` folder."""

    station: str
    name: str
    kind: str


@dataclass
class AuditResult:
    dropped: int = 0
    valid: int = 0
    accepted: int = 0
    failed: int = 0
    errored: int = 0
    quarantined: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    resubmitted: int = 0
    findings: list[str] = field(default_factory=list)
    #: Report ids now in some failed/ folder (with the server's reason).
    failed_ids: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.findings and not (self.lost or self.duplicated or self.stuck)

    def add(self, finding: str) -> None:
        self.findings.append(finding)


@dataclass
class _QueueItem:
    path: Path
    id: str
    sn: str | None
    last_error: str | None
    last_status: int | None


def _queue_items(folder: Path, result: AuditResult) -> Iterator[_QueueItem]:
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_bytes())
            envelope, report = data["envelope"], data["report"]
            yield _QueueItem(
                path,
                str(envelope["id"]).lower(),
                report.get("sn"),
                envelope.get("last_error"),
                envelope.get("last_status"),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            result.add(f"unreadable queue file {path}: {exc}")


def _reason_of(error_file: Path) -> str | None:
    try:
        text = error_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("reason:") and line.partition(":")[2].strip():
            return line.partition(":")[2].strip()
    return None


def audit(
    stations: Sequence[StationLayout],
    dropped: Sequence[Dropped],
    server_reports: Sequence[dict[str, Any]],
    *,
    planted: Sequence[Planted] = (),
    secrets: Iterable[str] = (),
    scan_root: Path | None = None,
    private_roots: Iterable[Path] = (),
) -> AuditResult:
    """Check the outcome of a run whose stations have settled (see the module docstring)."""
    result = AuditResult(dropped=len(dropped))
    by_station = {s.name: s for s in stations}
    on_server: dict[str, dict[str, Any]] = {}
    ids_by_sn: dict[str, list[str]] = defaultdict(list)
    for report in server_reports:
        rid = str(report["id"]).lower()
        on_server[rid] = report
        ids_by_sn[str(report.get("sn"))].append(rid)
        result.resubmitted += max(0, int(report.get("times_received", 1)) - 1)

    pending: dict[str, _QueueItem] = {}
    failed: dict[str, _QueueItem] = {}
    for station in stations:
        for item in _queue_items(station.queue / "pending", result):
            pending[item.id] = item
        for item in _queue_items(station.queue / "failed", result):
            failed[item.id] = item

    expected_ids: set[str] = set()
    known_sns: set[str] = set()
    for file in dropped:
        station = by_station[file.station]
        if file.sn:
            known_sns.add(file.sn)
        if file.valid:
            assert file.report_id is not None and file.sn is not None
            expected_ids.add(file.report_id)
            _audit_valid(result, file, station, on_server, ids_by_sn, pending, failed)
        else:
            _audit_bad(result, file, station, ids_by_sn)

    for rid, report in on_server.items():
        if rid not in expected_ids and str(report.get("sn")) not in known_sns:
            result.add(f"the server holds report {rid} (sn {report.get('sn')}) of no dropped file")
    for rid, item in {**pending, **failed}.items():
        if rid not in expected_ids:
            result.add(f"queue file {item.path} holds report {rid} of no dropped valid file")

    _audit_planted(result, planted, by_station)
    for station in stations:
        _audit_leftovers(result, station)
    if scan_root is not None:
        _audit_secrets(result, scan_root, secrets, {s.config for s in stations})
    for root in [*(s.queue for s in stations), *private_roots]:
        _audit_modes(result, root)
    for station in stations:
        _check_mode(result, station.config, 0o600)
    return result


def _audit_valid(
    result: AuditResult,
    file: Dropped,
    station: StationLayout,
    on_server: dict[str, dict[str, Any]],
    ids_by_sn: dict[str, list[str]],
    pending: dict[str, _QueueItem],
    failed: dict[str, _QueueItem],
) -> None:
    rid, sn = file.report_id, file.sn
    assert rid is not None and sn is not None
    result.valid += 1
    others = [other for other in ids_by_sn.get(sn, []) if other != rid]
    if others:
        result.duplicated += len(others)
        result.add(f"{file.name}: accepted under other id(s) {others} besides {rid}")
    accepted = rid in on_server
    if accepted and on_server[rid].get("sn") != sn:
        result.duplicated += 1
        result.add(f"{file.name}: report {rid} on the server is sn {on_server[rid].get('sn')}")
    in_failed = failed.get(rid)
    if in_failed is not None:
        result.failed_ids.add(rid)
        status = in_failed.last_status
        if not in_failed.last_error or status is None or not 400 <= status < 500:
            result.add(
                f"{file.name}: in failed/ without a server rejection (status {status}, "
                f"error {in_failed.last_error!r})"
            )
    if accepted and in_failed is not None:
        result.add(f"{file.name}: report {rid} is both accepted and in {in_failed.path}")
    if accepted:
        result.accepted += 1
    elif in_failed is not None:
        result.failed += 1
    elif rid in pending or (station.watch / file.name).exists():
        result.stuck += 1
        where = pending[rid].path if rid in pending else station.watch / file.name
        result.add(f"{file.name}: stuck, still at {where}")
    elif (station.error / file.name).exists():
        result.lost += 1
        result.add(f"{file.name}: a valid file went to Error: {_reason_of(_err(station, file))}")
    else:
        result.lost += 1
        result.add(f"{file.name}: LOST (report {rid} nowhere: not on the server, not queued)")


def _err(station: StationLayout, file: Dropped) -> Path:
    return station.error / f"{file.name}.error.txt"


def _audit_bad(
    result: AuditResult, file: Dropped, station: StationLayout, ids_by_sn: dict[str, list[str]]
) -> None:
    if file.sn and ids_by_sn.get(file.sn):
        result.add(f"{file.name} ({file.kind}): reached the server as {ids_by_sn[file.sn]}")
    if (station.error / file.name).exists():
        if _reason_of(_err(station, file)) is None:
            result.add(f"{file.name} ({file.kind}): in Error without a reason file")
        else:
            result.errored += 1
    elif (station.watch / file.name).exists():
        result.stuck += 1
        result.add(f"{file.name} ({file.kind}): stuck in the watch folder")
    elif (station.done / file.name).exists():
        result.add(f"{file.name} ({file.kind}): moved to Done as if it were a good result")
    else:
        result.lost += 1
        result.add(f"{file.name} ({file.kind}): gone, neither in Error nor in the watch folder")


def _audit_planted(
    result: AuditResult, planted: Sequence[Planted], stations: dict[str, StationLayout]
) -> None:
    for plant in planted:
        queue = stations[plant.station].queue
        moved = queue / "quarantine" / plant.name
        if moved.exists() and (queue / "quarantine" / f"{plant.name}.reason.txt").exists():
            result.quarantined += 1
        elif (queue / "pending" / plant.name).exists():
            result.stuck += 1
            result.add(f"planted {plant.kind} queue file {plant.name}: still in pending/")
        else:
            result.add(
                f"planted {plant.kind} queue file {plant.name}: not quarantined with a reason"
            )


def _audit_leftovers(result: AuditResult, station: StationLayout) -> None:
    for folder in (station.queue, station.watch):
        for path in _walk_files(folder):
            if path.name.endswith(TEMP_SUFFIX):
                result.add(f"temp file left: {path}")
    tmp = station.queue / "tmp"
    if tmp.is_dir():
        for path in tmp.iterdir():
            if not path.name.endswith(TEMP_SUFFIX):
                result.add(f"file left in the queue's tmp/: {path}")
    for path in sorted((station.queue / "intake").glob("batch-*")):
        result.add(f"unfinished intake journal left after a clean stop: {path}")


def _walk_files(root: Path) -> Iterator[Path]:
    for folder, _dirs, files in os.walk(root):
        for name in files:
            yield Path(folder, name)


def _secret_forms(secrets: Iterable[str]) -> list[bytes]:
    forms: list[bytes] = []
    for secret in secrets:
        if not secret:
            continue
        forms.append(secret.encode())
        try:
            decoded = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(decoded) >= 8:
            forms.append(decoded)
    return forms


def _audit_secrets(
    result: AuditResult, root: Path, secrets: Iterable[str], allowed: set[Path]
) -> None:
    forms = _secret_forms(secrets)
    if not forms:
        return
    for path in _walk_files(root):
        if path in allowed:
            continue
        try:
            if path.stat().st_size > _SCAN_LIMIT:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if any(form in data for form in forms):
            result.add(f"a token appears in {path}")


def _check_mode(result: AuditResult, path: Path, expected: int) -> None:
    try:
        mode = stat.S_IMODE(path.lstat().st_mode)
    except OSError:
        return
    if mode != expected:
        result.add(f"{path}: mode {mode:04o}, expected {expected:04o} (owner-only)")


def _audit_modes(result: AuditResult, root: Path) -> None:
    if not root.is_dir():
        return
    _check_mode(result, root, 0o700)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            _check_mode(result, Path(folder, name), 0o700)
        for name in files:
            _check_mode(result, Path(folder, name), 0o600)


def find_orphans(tag: str, exclude: Iterable[int] = ()) -> list[str]:
    """Live processes carrying ``RUN_TAG_ENV=tag`` (started by the run), as ``pid cmdline``."""
    skip = {os.getpid(), *exclude}
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.pid in skip or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if proc.environ().get(RUN_TAG_ENV) == tag:
                found.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])[:120]}")
        except psutil.Error:
            continue
    return found


def count_kinds(dropped: Sequence[Dropped]) -> Counter[str]:
    return Counter(file.kind for file in dropped)
