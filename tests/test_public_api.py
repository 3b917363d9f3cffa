"""The public API, pinned: a name added or removed here is a deliberate decision.

The seed README's names must keep working; everything else public is listed so
that an accidental export (or a lost one) fails this test, as httpx does it.
"""

from __future__ import annotations

import importlib

import pytest

PUBLIC: dict[str, set[str]] = {
    "pywats_client": {
        "ControlRefused", "ControlResult", "ControlUnavailable", "InstanceResult",
        "InstanceState", "InstanceStatus", "SupervisorControl", "SupervisorInfo",
        "SupervisorNotRunning", "UnknownInstance", "__version__", "list_instances",
    },
    "pywats_client.core": {
        "ClientConfig", "ClientSnapshot", "InstanceEntry", "PostAction", "Registry",
        "RetryPolicy", "SupervisorSettings", "TOKEN_ENV_VAR", "WATSClient",
        "acquire_instance_lock",
    },
    "pywats_client.services": {"ConnectionService", "FileWatcher", "QueueService", "WATSApiClient"},
    "pywats_client.converters": {
        "BaseConverter", "Candidate", "Conversion", "ConverterInfo", "ConverterManager",
        "ConverterOutput", "ENTRY_POINT_GROUP", "LoadProblem", "REPORT_ID_NAMESPACE", "report_id",
    },
    "pywats_client.models": {
        "AnyStep", "BooleanMeasurement", "Chart", "ChartSeries", "CompOp", "GenericStep",
        "LoopInfo", "MiscInfo", "NumericLimitStep", "NumericMeasurement", "PassFailStep",
        "ReportResult", "SeqCallInfo", "SequenceCallStep", "Step", "StepGroup", "StepStatus",
        "StringMeasurement", "StringValueStep", "SubUnit", "UURInfo", "UURReport", "UUTInfo",
        "UUTReport", "XYChartStep", "compare_numeric", "compare_string", "parse_report",
    },
    "pywats_client.errors": {
        "ConfigError", "ConversionError", "DiskFullError", "FatalError", "InstanceLockedError",
        "PyWATSClientError", "RegistryError", "RejectedError", "ReportRejectedError",
        "RetryableError", "ServerUnavailableError", "UnauthorizedError",
    },
    "pywats_client.queue": {
        "CorruptQueueFile", "Envelope", "NewReport", "QueueCounts", "QueueItem", "QueueState",
        "QueueStore", "RequeueResult",
    },
    "pywats_client.control": {
        "ControlRefused", "ControlResult", "ControlUnavailable", "DEFAULT_TIMEOUT",
        "DEFAULT_WAIT", "InstanceResult", "SupervisorControl", "SupervisorInfo",
        "SupervisorNotRunning", "UnknownInstance",
    },
    "pywats_client.standin": {
        "DEFAULT_MAX_BODY", "DEFAULT_VERSION", "FaultInjector", "FaultPlan", "FaultSpecError",
        "ReportRecord", "ReportStore", "ServerThread", "StandinApp", "StandinProcess",
        "StandinServer", "TOKEN_ENV_VAR", "generate_token", "run", "validation_message",
    },
    "pywats_client.supervisor": {
        "EXIT_CONFIG", "EXIT_LOCKED", "InstanceState", "InstanceStatus", "State",
        "StatusReport", "Supervisor", "SupervisorStatus",
        "list_instances", "status_report",
    },
}  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_exports_are_exactly_the_pinned_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC[module_name]
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{module_name}.{name} does not resolve"


def test_seed_readme_names_import_as_shown() -> None:
    from pywats_client.converters import BaseConverter
    from pywats_client.core import ClientConfig, WATSClient
    from pywats_client.services import ConnectionService, QueueService

    assert {WATSClient.start, WATSClient.stop, QueueService.start, QueueService.get_status}
    assert {ConnectionService.start, ConnectionService.is_connected}
    assert ConnectionService.get_server_version
    assert {ClientConfig.load_or_create, ClientConfig.save}
    assert {BaseConverter.can_convert, BaseConverter.convert, BaseConverter.create_step}


def test_no_top_level_pywats_package_is_shipped() -> None:
    """The pywats-api distribution owns ``pywats``; we only provide a plugin-time alias."""
    import importlib.util

    spec = importlib.util.find_spec("pywats")
    assert spec is None or "pywats_client" not in str(spec.origin)


def test_errors_are_classified_by_what_the_caller_must_do() -> None:
    from pywats_client import errors

    families = (errors.RetryableError, errors.RejectedError, errors.FatalError)
    for name in errors.__all__:
        cls = getattr(errors, name)
        if cls in (errors.PyWATSClientError, *families):
            continue
        assert sum(issubclass(cls, family) for family in families) == 1, name
