"""`pywats-client logs`: show an instance's log."""

from __future__ import annotations

from typing import Any

from pywats_client.cli._unavailable import register_unavailable


def register(subparsers: Any) -> None:
    register_unavailable(subparsers, "logs", "show an instance's log")
