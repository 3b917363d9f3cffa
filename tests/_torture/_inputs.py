"""Result files the torture suite drops into watch folders: valid ones and every kind of bad one.

Each valid file carries a unique serial number and no report id, so the
converter derives the id from the instance name and the file's bytes
(``pywats_client.converters.report_id``): the audit knows, before anything
runs, which id every valid file must end up as on the server.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

from pywats_client.converters import report_id
from tests.e2e._intake_support import wsjf

__all__ = ["BAD_KINDS", "VALID_KINDS", "Dropped", "InputMaker"]

#: Kinds that must each become exactly one accepted report.
VALID_KINDS = ("valid", "slow")
#: Kinds that must each end in the Error folder with a reason file.
BAD_KINDS = ("truncated", "empty", "binary", "huge", "xml-bomb", "xxe")

XML_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Reports><Report type="T" pn="&lol9;" sn="%(sn)s" rev="A" processCode="10" result="P"
 start="2026-03-02T09:15:00+01:00"/></Reports>
"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE testsuites [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<testsuites><testsuite name="%(sn)s" tests="1">
<testcase name="&xxe;" classname="torture"/></testsuite></testsuites>
"""


@dataclass(frozen=True)
class Dropped:
    """One file dropped into a station's watch folder, and what must become of it."""

    station: str
    name: str
    kind: str
    sn: str | None = None
    report_id: str | None = None

    @property
    def valid(self) -> bool:
        return self.kind in VALID_KINDS


class InputMaker:
    """Writes result files for one run; ``prefix`` makes serial numbers unique to the run."""

    def __init__(self, rng: random.Random, prefix: str, max_file_size: int) -> None:
        self.rng = rng
        self.prefix = prefix
        self.max_file_size = max_file_size
        self._serial = 0

    def next_sn(self, station: str) -> str:
        self._serial += 1
        return f"{self.prefix}-{station}-{self._serial:06d}"

    def valid_bytes(self, sn: str) -> bytes:
        report = wsjf(sn, pn=f"PN-{self.rng.randrange(5)}")
        return json.dumps(report, indent=1).encode()

    def drop_valid(self, folder: Path, station: str, *, slow: bool = False) -> Dropped:
        """A valid result; ``slow`` writes it in pieces with short pauses, as a slow tester."""
        sn = self.next_sn(station)
        data = self.valid_bytes(sn)
        name = f"{sn}.json"
        if slow:
            _write_slowly(folder / name, data, self.rng)
        else:
            _write_atomically(folder / name, data)
        expected = str(report_id(station, hashlib.sha256(data).hexdigest(), 0))
        return Dropped(station, name, "slow" if slow else "valid", sn, expected)

    def drop_bad(self, folder: Path, station: str, kind: str) -> Dropped:
        """A file that must end in Error with a reason: one of :data:`BAD_KINDS`."""
        sn = self.next_sn(station)
        suffix, data = self._bad_content(kind, sn)
        name = f"{sn}-{kind}{suffix}"
        _write_atomically(folder / name, data)
        return Dropped(station, name, kind, sn)

    def _bad_content(self, kind: str, sn: str) -> tuple[str, bytes]:
        if kind == "truncated":  # a tester that died mid-write: the file stays cut off
            data = self.valid_bytes(sn)
            return ".json", data[: self.rng.randrange(len(data) // 4, len(data) * 3 // 4)]
        if kind == "empty":
            return ".json", b""
        if kind == "binary":
            return ".dat", self.rng.randbytes(self.rng.randrange(64, 4096))
        if kind == "huge":
            size = self.max_file_size + self.rng.randrange(1, self.max_file_size)
            return ".json", b'{"pad": "' + b"x" * size + b'"}'
        if kind == "xml-bomb":
            return ".xml", XML_BOMB % {b"sn": sn.encode()}
        if kind == "xxe":
            return ".xml", XXE % {b"sn": sn.encode()}
        raise ValueError(f"unknown bad input kind {kind!r}; known: {', '.join(BAD_KINDS)}")


def _write_atomically(path: Path, data: bytes) -> None:
    """Write under an ignored temp name, then rename: the watcher sees the whole file at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_slowly(path: Path, data: bytes, rng: random.Random) -> None:
    """Write straight to the final name in 3-6 pieces, 50-150 ms apart (well below ready_after)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pieces = rng.randrange(3, 7)
    step = -(-len(data) // pieces)
    with open(path, "wb") as out:
        for start in range(0, len(data), step):
            out.write(data[start : start + step])
            out.flush()
            time.sleep(rng.uniform(0.05, 0.15))  # the scenario: a writer pausing between pieces
