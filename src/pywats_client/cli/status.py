"""`pywats-client status`: show the state of every instance."""

from __future__ import annotations

from typing import Any

from pywats_client.cli._unavailable import register_unavailable


def register(subparsers: Any) -> None:
    register_unavailable(subparsers, "status", "show the state of every instance")
