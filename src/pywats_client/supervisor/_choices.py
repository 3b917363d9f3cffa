"""Operator choices that outlive the supervisor: which instances are stopped or paused.

``<state_dir>/instances-state.json`` = ``{"stopped": [...], "paused": [...]}``.
A station an operator stopped stays stopped after a reboot until started
again; the registry's ``enabled`` stays the administrator's switch.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from pywats_client._fsutil import atomic_write_text, ensure_private_dir

__all__ = ["CHOICES_NAME", "Choices"]

CHOICES_NAME = "instances-state.json"
log = logging.getLogger("pywats_client.supervisor")


@dataclass
class Choices:
    path: Path
    stopped: set[str] = field(default_factory=set)
    paused: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, state_dir: Path) -> Choices:
        path = state_dir / CHOICES_NAME
        choices = cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return choices
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s (%s): all instances start as configured", path, exc)
            return choices
        if isinstance(data, dict):
            for key in ("stopped", "paused"):
                names = data.get(key)
                if isinstance(names, list):
                    getattr(choices, key).update(n for n in names if isinstance(n, str))
        return choices

    def choose(self, name: str, *, stopped: bool | None = None, paused: bool | None = None) -> None:
        """Record a choice and persist it (best effort: a failure is logged, not raised)."""
        for flag, names in ((stopped, self.stopped), (paused, self.paused)):
            if flag is True:
                names.add(name)
            elif flag is False:
                names.discard(name)
        self.save()

    def forget_except(self, names: set[str]) -> None:
        """Drop choices of instances no longer in the registry."""
        if (self.stopped | self.paused) - names:
            self.stopped &= names
            self.paused &= names
            self.save()

    def save(self) -> None:
        data = {"stopped": sorted(self.stopped), "paused": sorted(self.paused)}
        with contextlib.suppress(OSError):
            ensure_private_dir(self.path.parent)
            atomic_write_text(self.path, json.dumps(data, indent=1) + "\n", sync_dir=False)
            return
        log.warning("could not save %s; operator choices will not survive a restart", self.path)
