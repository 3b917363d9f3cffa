"""`pywats-client converters`: list the converters found and where they came from."""

from __future__ import annotations

from typing import Any

from pywats_client.cli._unavailable import register_unavailable


def register(subparsers: Any) -> None:
    register_unavailable(subparsers, "converters", "list the converters found")
