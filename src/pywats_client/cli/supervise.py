"""`pywats-client supervise`: run the supervisor for an instances registry."""

from __future__ import annotations

from typing import Any

from pywats_client.cli._unavailable import register_unavailable


def register(subparsers: Any) -> None:
    register_unavailable(subparsers, "supervise", "run the supervisor for an instances registry")
