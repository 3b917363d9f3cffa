"""The instances registry (``instances.toml``): which stations run on this host.

One ``[[instance]]`` table per station (``name``, ``config``, ``enabled``) and
one optional ``[supervisor]`` table. Config paths are relative to the registry
file. Loading checks everything that would otherwise surface later as a
confusing runtime failure: duplicate or unsafe names, missing config files, and
two instances sharing a queue folder (they would fight over one lock).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pywats_client.core._validation import config_error_from_validation
from pywats_client.core.config import ClientConfig
from pywats_client.errors import ConfigError, RegistryError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["DEFAULT_STATE_DIR", "InstanceEntry", "Registry", "SupervisorSettings"]

#: Supervisor state (lock, status, control key) lives here unless configured.
DEFAULT_STATE_DIR = ".pywats"

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_WINDOWS_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(1, 10)),
    *(f"lpt{i}" for i in range(1, 10)),
}


class SupervisorSettings(BaseModel):
    """The ``[supervisor]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state_dir: Path = Field(
        Path(DEFAULT_STATE_DIR),
        description="Folder of supervisor.lock, status.json and the control key.",
    )
    log_dir: Path | None = Field(
        None, description="Folder of per-instance logs. Default: the platform's log folder."
    )
    heartbeat_interval: float = Field(1.0, gt=0, le=60, description="Seconds between heartbeats.")
    heartbeat_timeout: float = Field(
        10.0, gt=0, description="Seconds without a heartbeat before a worker is deemed hung."
    )
    startup_grace: float = Field(
        30.0, gt=0, description="Seconds a new worker may take to send its first heartbeat."
    )
    stop_timeout: float = Field(
        10.0, gt=0, description="Seconds a worker gets to stop gracefully before it is killed."
    )
    restart_initial_delay: float = Field(
        0.5, ge=0, description="Backoff before the second quick restart, seconds."
    )
    restart_max_delay: float = Field(60.0, gt=0, description="Longest restart backoff, seconds.")
    stable_after: float = Field(
        60.0, gt=0, description="Seconds of uptime after which restart backoff resets."
    )
    crash_loop_exits: int = Field(
        5, ge=2, description="This many exits within crash_loop_window marks crash-looping."
    )
    crash_loop_window: float = Field(60.0, gt=0, description="Window for crash_loop_exits, s.")
    status_interval: float = Field(1.0, gt=0, description="Seconds between status snapshots.")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Serve Prometheus metrics on this port; null: off."
    )
    metrics_host: str = Field("127.0.0.1", description="Address the metrics server binds to.")
    log_format: Literal["text", "json"] = Field(
        "text", description="Log line format: text, or json (one JSON object per line)."
    )
    log_max_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Rotate a log file when it reaches this size."
    )
    log_backups: int = Field(5, ge=0, le=100, description="Rotated log files kept per log.")


class InstanceEntry(BaseModel):
    """One ``[[instance]]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Unique station name, safe as a folder name.")
    config: Path = Field(description="Path to the instance's JSON config (relative to registry).")
    enabled: bool = Field(True, description="Run this instance under the supervisor.")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not _SAFE_NAME.match(value) or value.lower().split(".")[0] in _WINDOWS_RESERVED:
            raise ValueError(
                f"{value!r} is not a safe instance name; use 1-64 letters, digits, '.', '_' "
                "or '-', starting with a letter or digit"
            )
        return value


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    supervisor: SupervisorSettings = Field(default_factory=SupervisorSettings)
    instance: list[InstanceEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class Registry:
    """A loaded, checked registry. Paths in it are absolute."""

    path: Path
    supervisor: SupervisorSettings
    instances: tuple[InstanceEntry, ...]

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, path: Path) -> Path:
        path = path.expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def state_dir(self) -> Path:
        return self.resolve(self.supervisor.state_dir)

    def config_path(self, entry: InstanceEntry) -> Path:
        return self.resolve(entry.config)

    def load_config(self, entry: InstanceEntry) -> ClientConfig:
        return ClientConfig.load(self.config_path(entry))

    def get(self, name: str) -> InstanceEntry | None:
        return next((e for e in self.instances if e.name == name), None)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.instances]

    @classmethod
    def load(cls, path: Path, *, check_configs: bool = True) -> Registry:
        """Read and check ``path``; every problem is a :class:`RegistryError`.

        ``check_configs`` also loads each instance's config, so a bad station
        config is reported before anything starts.
        """
        path = Path(path).resolve()
        try:
            with path.open("rb") as handle:
                data: dict[str, Any] = tomllib.load(handle)
        except FileNotFoundError:
            raise RegistryError(
                "registry file not found; pass --registry FILE or set $PYWATS_REGISTRY, or "
                "write one (one [[instance]] per station: see docs/quickstart.md)",
                file=path,
            ) from None
        except tomllib.TOMLDecodeError as exc:
            hint = (
                "; in TOML write Windows paths in single quotes ('C:\\TestResults') "
                "or with forward slashes"
                if "'\\'" in str(exc)
                else ""
            )
            raise RegistryError(f"not valid TOML: {exc}{hint}", file=path) from None
        except OSError as exc:
            raise RegistryError(f"cannot be read ({exc.strerror})", file=path) from None
        try:
            parsed = _RegistryFile.model_validate(data)
        except ValidationError as exc:
            raise config_error_from_validation(
                exc, file=path, model=_RegistryFile, error_cls=RegistryError
            ) from None
        registry = cls(path=path, supervisor=parsed.supervisor, instances=tuple(parsed.instance))
        registry._check_names()
        if check_configs:
            registry._check_configs()
        return registry

    def _check_names(self) -> None:
        seen: set[str] = set()
        for entry in self.instances:
            folded = entry.name.lower()  # Windows folders are case-insensitive
            if folded in seen:
                raise RegistryError(
                    f"instance name {entry.name!r} is used twice; every instance needs its own "
                    "name",
                    file=self.path,
                    key="instance.name",
                )
            seen.add(folded)

    def _check_configs(self) -> None:
        queue_owner: dict[Path, str] = {}
        for entry in self.instances:
            try:
                config = self.load_config(entry)
            except ConfigError as exc:
                raise RegistryError(
                    f"instance {entry.name!r}: {exc}", file=self.path, key="instance.config"
                ) from None
            queue = config.queue_dir
            if queue in queue_owner:
                raise RegistryError(
                    f"instances {queue_owner[queue]!r} and {entry.name!r} share the queue folder "
                    f"{queue}; give each instance its own queue_path",
                    file=self.path,
                    key="instance.config",
                )
            queue_owner[queue] = entry.name
