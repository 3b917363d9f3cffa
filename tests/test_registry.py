"""instances.toml: paths relative to the registry, and every mistake rejected clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pywats_client.core import Registry
from pywats_client.errors import RegistryError

REPO = Path(__file__).resolve().parent.parent


def _station(folder: Path, name: str, **settings: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"instance_name": name, "queue_path": f"q-{name}", **settings}))
    return path


def _registry(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "instances.toml"
    path.write_text(body)
    return path


def test_shipped_example_loads() -> None:
    registry = Registry.load(REPO / "instances.example.toml")
    assert registry.names == ["station-1", "station-2"]
    for entry in registry.instances:
        config = registry.load_config(entry)
        assert config.queue_dir.is_relative_to(REPO / "examples")


def test_relative_paths_resolve_against_registry_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _station(tmp_path / "stations", "a")
    path = _registry(tmp_path, '[[instance]]\nname = "a"\nconfig = "stations/a.json"\n')
    monkeypatch.chdir("/")
    registry = Registry.load(path)
    entry = registry.instances[0]
    assert registry.config_path(entry) == tmp_path / "stations" / "a.json"
    assert registry.state_dir == tmp_path / ".pywats"
    assert entry.enabled


def test_supervisor_table_is_optional_and_validated(tmp_path: Path) -> None:
    path = _registry(tmp_path, "[supervisor]\nheartbeat_timeout = -3\n")
    with pytest.raises(RegistryError, match=r"supervisor\.heartbeat_timeout"):
        Registry.load(path)


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("station-1", True),
        ("Line2.ST4_b", True),
        ("../etc", False),
        ("a/b", False),
        ("", False),
        ("-leading", False),
        ("con", False),
        ("LPT1", False),
        ("x" * 65, False),
    ],
)
def test_instance_names_must_be_safe_folder_names(
    tmp_path: Path, name: str, accepted: bool
) -> None:
    _station(tmp_path, "s")
    path = _registry(tmp_path, f'[[instance]]\nname = "{name}"\nconfig = "s.json"\n')
    if accepted:
        assert Registry.load(path).names == [name]
    else:
        with pytest.raises(RegistryError, match="instance"):
            Registry.load(path)


def test_duplicate_names_rejected_case_insensitively(tmp_path: Path) -> None:
    _station(tmp_path, "a")
    _station(tmp_path, "b")
    path = _registry(
        tmp_path,
        '[[instance]]\nname = "st"\nconfig = "a.json"\n'
        '[[instance]]\nname = "ST"\nconfig = "b.json"\n',
    )
    with pytest.raises(RegistryError, match="used twice"):
        Registry.load(path)


def test_missing_config_file_named(tmp_path: Path) -> None:
    path = _registry(tmp_path, '[[instance]]\nname = "a"\nconfig = "gone.json"\n')
    with pytest.raises(RegistryError) as info:
        Registry.load(path)
    assert "gone.json" in str(info.value)
    assert "'a'" in str(info.value)
    # Without config checks the registry itself still loads (status works on a broken host).
    assert Registry.load(path, check_configs=False).names == ["a"]


def test_shared_queue_folder_rejected(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"queue_path": "shared"}))
    (tmp_path / "b.json").write_text(json.dumps({"queue_path": "./shared/"}))
    path = _registry(
        tmp_path,
        '[[instance]]\nname = "a"\nconfig = "a.json"\n'
        '[[instance]]\nname = "b"\nconfig = "b.json"\n',
    )
    with pytest.raises(RegistryError, match="share the queue folder"):
        Registry.load(path)


def test_unknown_keys_and_bad_toml(tmp_path: Path) -> None:
    _station(tmp_path, "a")
    path = _registry(tmp_path, '[[instance]]\nname = "a"\nconfig = "a.json"\nenabeld = false\n')
    with pytest.raises(RegistryError, match="did you mean 'enabled'"):
        Registry.load(path)
    path.write_text("[[instance]\n")
    with pytest.raises(RegistryError, match="not valid TOML"):
        Registry.load(path)
    path.write_text('[[instance]]\nname = "a"\nconfig = "C:\\TestResults\\a.json"\n')
    with pytest.raises(RegistryError, match="Windows paths in single quotes"):
        Registry.load(path)


def test_missing_registry_file(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"--registry FILE or set \$PYWATS_REGISTRY"):
        Registry.load(tmp_path / "instances.toml")


def test_bad_station_config_reported_through_registry(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"post_action": "burn"}')
    path = _registry(tmp_path, '[[instance]]\nname = "a"\nconfig = "a.json"\n')
    with pytest.raises(RegistryError) as info:
        Registry.load(path)
    message = str(info.value)
    assert "a.json" in message
    assert "post_action" in message
    assert "\n" not in message
