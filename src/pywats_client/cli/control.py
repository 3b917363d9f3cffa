"""`pywats-client start|stop|restart|pause|resume|reload`: control stations."""

from __future__ import annotations

from typing import Any

from pywats_client.cli._unavailable import register_unavailable


def register(subparsers: Any) -> None:
    for name, help_text in (
        ("start", "start stopped instances"),
        ("stop", "stop instances"),
        ("restart", "restart instances"),
        ("pause", "pause uploads of instances"),
        ("resume", "resume uploads of instances"),
        ("reload", "re-read the registry now"),
    ):
        register_unavailable(subparsers, name, help_text)
