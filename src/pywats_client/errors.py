"""Exceptions, classified by what the caller must do about them.

Every error the service raises belongs to exactly one of three families:

* :class:`RetryableError` - the same operation may succeed later (network down,
  server busy, disk full). Keep the work item and try again with backoff.
* :class:`RejectedError` - this item can never succeed as it is (the server
  rejected the report, the file is not a valid test result). Park it with the
  reason where an operator can see it, and go on with the rest.
* :class:`FatalError` - the service cannot go on until an operator acts (bad
  configuration, instance already running). Stop with a clear message.

Messages are written for the operator: they name the file, key or value at
fault and say what to do. They never contain secrets.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ConfigError",
    "ConversionError",
    "DiskFullError",
    "FatalError",
    "InstanceLockedError",
    "PyWATSClientError",
    "RegistryError",
    "RejectedError",
    "ReportRejectedError",
    "RetryableError",
    "ServerUnavailableError",
    "UnauthorizedError",
]


class PyWATSClientError(Exception):
    """Base class of every error this package raises on purpose."""


# --- retry -----------------------------------------------------------------


class RetryableError(PyWATSClientError):
    """The operation may succeed if tried again later.

    ``retry_after`` is the earliest sensible retry in seconds when the cause
    says so (an HTTP ``Retry-After`` header), else ``None``.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerUnavailableError(RetryableError):
    """The WATS server could not be reached or answered 5xx/429/timeout.

    ``status_code`` is the HTTP status when the server answered, else ``None``
    (a network error: DNS, refused, TLS, timeout).
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status_code = status_code


class DiskFullError(RetryableError):
    """The disk (or quota) holding the queue is full: nothing was written.

    The source stays where it is; the same work succeeds once space is freed.
    """


class UnauthorizedError(RetryableError):
    """The server refused the token (401/403).

    Retrying every report would only repeat the refusal, so uploading pauses
    as a whole and is retried slowly; the backlog is never dead-lettered for it.
    """


# --- dead-letter -------------------------------------------------------------


class RejectedError(PyWATSClientError):
    """This item can never succeed as it is: park it with the reason."""


class ReportRejectedError(RejectedError):
    """The server answered 400: the report itself is invalid."""

    def __init__(self, message: str, *, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


class ConversionError(RejectedError):
    """A source file could not be turned into a report.

    ``converter`` names the converter at fault (``None`` when no converter
    accepted the file) and ``file`` the source file.
    """

    def __init__(
        self,
        message: str,
        *,
        converter: str | None = None,
        file: Path | None = None,
    ) -> None:
        super().__init__(message)
        self.converter = converter
        self.file = file


# --- stop ----------------------------------------------------------------------


class FatalError(PyWATSClientError):
    """The service cannot continue until an operator acts."""


class ConfigError(FatalError):
    """A configuration file or value is invalid.

    ``str(error)`` is one line: ``<file>: <key>: <problem>. <what to do>``.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: Path | str | None = None,
        key: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = Path(file) if file is not None else None
        self.key = key
        parts = [str(p) for p in (self.file, key) if p]
        super().__init__(": ".join([*parts, problem]))


class RegistryError(ConfigError):
    """The instances registry (``instances.toml``) is invalid."""


class InstanceLockedError(FatalError):
    """Another process already owns this instance (or this supervisor's registry)."""

    def __init__(self, message: str, *, holder_pid: int | None = None) -> None:
        super().__init__(message)
        self.holder_pid = holder_pid
