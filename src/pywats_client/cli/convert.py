"""`pywats-client convert`: dry-run a file through the converters."""

from __future__ import annotations

from typing import Any

from pywats_client.cli._unavailable import register_unavailable


def register(subparsers: Any) -> None:
    register_unavailable(subparsers, "convert", "dry-run a file through the converters")
