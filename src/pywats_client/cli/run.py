"""`pywats-client run`: run one instance in the foreground."""

from __future__ import annotations

from typing import Any

from pywats_client.cli._unavailable import register_unavailable


def register(subparsers: Any) -> None:
    register_unavailable(subparsers, "run", "run one instance in the foreground")
