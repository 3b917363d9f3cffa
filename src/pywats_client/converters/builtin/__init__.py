"""The converters that ship with the service, one module per format.

Each reads its format strictly and raises only ``ConversionError``; their
settings live under ``converters.<name>`` in the instance config.
"""

from __future__ import annotations

from pywats_client.converters.base import BaseConverter
from pywats_client.converters.builtin.atml import AtmlConverter
from pywats_client.converters.builtin.csv_log import CsvConverter
from pywats_client.converters.builtin.junit import JUnitConverter
from pywats_client.converters.builtin.wats_text import WatsTextConverter
from pywats_client.converters.builtin.wsjf import WsjfConverter
from pywats_client.converters.builtin.wsxf import WsxfConverter

__all__ = [
    "BUILTIN_CONVERTERS",
    "AtmlConverter",
    "CsvConverter",
    "JUnitConverter",
    "WatsTextConverter",
    "WsjfConverter",
    "WsxfConverter",
]

#: In load order (ties between equally sure built-ins go to the earlier one).
BUILTIN_CONVERTERS: tuple[type[BaseConverter], ...] = (
    WsjfConverter,
    WsxfConverter,
    WatsTextConverter,
    JUnitConverter,
    AtmlConverter,
    CsvConverter,
)
