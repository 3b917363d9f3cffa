"""Converters: turn tester result files into WATS reports.

``BaseConverter`` is the plugin API from the seed README; ``ConverterManager``
discovers the built-ins, installed entry points and the instance's plugin
folder, picks a converter per file and returns validated WSJF with stable ids.
See ``docs/converters.md`` for writing a converter.
"""

from pywats_client.converters._loader import ENTRY_POINT_GROUP, LoadProblem
from pywats_client.converters._results import REPORT_ID_NAMESPACE, report_id
from pywats_client.converters.base import BaseConverter, ConverterOutput
from pywats_client.converters.manager import (
    Candidate,
    Conversion,
    ConverterInfo,
    ConverterManager,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "REPORT_ID_NAMESPACE",
    "BaseConverter",
    "Candidate",
    "Conversion",
    "ConverterInfo",
    "ConverterManager",
    "ConverterOutput",
    "LoadProblem",
    "report_id",
]
