"""Write the demo's folder: one config and watch folder per station, and the registry.

Everything is an ordinary registry and ordinary instance configs, the same
files an operator writes, so ``--keep`` leaves a folder that ``pywats-client
status``, ``queue list`` and ``supervise`` work on as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pywats_client._demo._samples import ALL_KINDS, SampleKind, kinds_for_station
from pywats_client.core.config import ClientConfig, RetryPolicy

__all__ = ["DEMO_SUPERVISOR", "DemoLayout", "StationLayout", "write_demo_folder"]

#: Supervisor settings that make kills and restarts visible within seconds.
DEMO_SUPERVISOR: dict[str, Any] = {
    "state_dir": ".pywats",
    "log_dir": "logs",
    "heartbeat_interval": 0.5,
    "heartbeat_timeout": 10.0,
    "startup_grace": 60.0,
    "stop_timeout": 8.0,
    "status_interval": 0.25,
    "restart_initial_delay": 0.2,
    "restart_max_delay": 5.0,
    "stable_after": 5.0,
}
#: Seconds a file must stay unchanged before a station takes it.
READY_AFTER = 0.5


@dataclass(frozen=True)
class StationLayout:
    name: str
    config_path: Path
    watch_dir: Path
    kinds: tuple[SampleKind, ...]

    @property
    def error_dir(self) -> Path:
        return self.watch_dir / "Error"

    @property
    def done_dir(self) -> Path:
        return self.watch_dir / "Done"


@dataclass(frozen=True)
class DemoLayout:
    root: Path
    registry: Path
    stations: tuple[StationLayout, ...]

    def station(self, name: str) -> StationLayout:
        return next(s for s in self.stations if s.name == name)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def station_config(name: str, kinds: tuple[SampleKind, ...], url: str, token: str) -> ClientConfig:
    """The config of one demo station: only its own formats' converters are enabled."""
    own = {k.converter for k in kinds}
    disabled = {k.converter for k in ALL_KINDS} - own
    return ClientConfig(
        instance_name=name,
        service_address=url,
        api_token=token,  # pydantic makes it a SecretStr
        watch_paths=[Path("in")],
        queue_path=Path("queue"),
        converter_path=Path("converters"),
        file_patterns=sorted({f"*{k.suffix}" for k in kinds}),
        converters={c: {"enabled": False} for c in sorted(disabled)},
        ready_after=READY_AFTER,
        rescan_interval=2.0,
        ping_interval=5.0,
        request_timeout=10.0,
        retry=RetryPolicy(initial_delay=0.5, max_delay=5.0),
        station_name=f"demo-{name}",
        location="Demo plant",
        purpose="Demo",
    )


def write_demo_folder(root: Path, stations: int, url: str, token: str) -> DemoLayout:
    """Create ``root/instances.toml`` and ``root/station-N/`` for ``stations`` stations."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by 'pywats-client demo'.", "[supervisor]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in DEMO_SUPERVISOR.items()]
    layouts: list[StationLayout] = []
    for position in range(stations):
        name = f"station-{position + 1}"
        kinds = kinds_for_station(position, stations)
        folder = root / name
        config_path = folder / "config.json"
        station_config(name, kinds, url, token).save(config_path)
        watch = folder / "in"
        watch.mkdir(parents=True, exist_ok=True)
        (folder / "converters").mkdir(exist_ok=True)
        layouts.append(StationLayout(name, config_path, watch, kinds))
        lines += [
            "",
            "[[instance]]",
            f"name = {_toml_value(name)}",
            f"config = {_toml_value(f'{name}/config.json')}",
            "enabled = true",
        ]
    registry = root / "instances.toml"
    registry.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return DemoLayout(root=root, registry=registry, stations=tuple(layouts))
