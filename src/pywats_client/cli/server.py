"""`pywats-client server`: run the local WATS stand-in server."""

from __future__ import annotations

from typing import Any

from pywats_client.cli._unavailable import register_unavailable


def register(subparsers: Any) -> None:
    register_unavailable(subparsers, "server", "run the local WATS stand-in server")
