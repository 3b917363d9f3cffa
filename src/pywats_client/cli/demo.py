"""`pywats-client demo`: run a self-contained demo with a local WATS stand-in."""

from __future__ import annotations

from typing import Any

from pywats_client.cli._unavailable import register_unavailable


def register(subparsers: Any) -> None:
    register_unavailable(subparsers, "demo", "run a self-contained demo with a local WATS stand-in")
