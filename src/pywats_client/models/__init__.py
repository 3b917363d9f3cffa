"""WATS report models (WSJF JSON).

The seed README's example imports ``from pywats.models import UUTReport``; in
this package the same models live here, in ``pywats_client.models``.
"""

from pywats_client.models.report import (
    MiscInfo,
    ReportResult,
    SubUnit,
    UURInfo,
    UURReport,
    UUTInfo,
    UUTReport,
    parse_report,
)
from pywats_client.models.steps import (
    AnyStep,
    BooleanMeasurement,
    Chart,
    ChartSeries,
    CompOp,
    GenericStep,
    LoopInfo,
    NumericLimitStep,
    NumericMeasurement,
    PassFailStep,
    SeqCallInfo,
    SequenceCallStep,
    Step,
    StepGroup,
    StepStatus,
    StringMeasurement,
    StringValueStep,
    XYChartStep,
    compare_numeric,
    compare_string,
)

__all__ = [
    "AnyStep",
    "BooleanMeasurement",
    "Chart",
    "ChartSeries",
    "CompOp",
    "GenericStep",
    "LoopInfo",
    "MiscInfo",
    "NumericLimitStep",
    "NumericMeasurement",
    "PassFailStep",
    "ReportResult",
    "SeqCallInfo",
    "SequenceCallStep",
    "Step",
    "StepGroup",
    "StepStatus",
    "StringMeasurement",
    "StringValueStep",
    "SubUnit",
    "UURInfo",
    "UURReport",
    "UUTInfo",
    "UUTReport",
    "XYChartStep",
    "compare_numeric",
    "compare_string",
    "parse_report",
]
