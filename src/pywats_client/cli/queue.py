"""`pywats-client queue`: list or requeue queued reports."""

from __future__ import annotations

from typing import Any

from pywats_client.cli._unavailable import register_unavailable


def register(subparsers: Any) -> None:
    register_unavailable(subparsers, "queue", "list or requeue queued reports")
