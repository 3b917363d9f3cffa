"""ClientConfig: the seed's API, atomic owner-only saving, clear errors, no token leaks."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from pywats_client.core import TOKEN_ENV_VAR, ClientConfig
from pywats_client.errors import ConfigError

SECRET = "c2VjcmV0LXRva2VuLTEyMzQ="


def test_seed_constructor_and_save_round_trip(tmp_path: Path) -> None:
    config = ClientConfig(
        instance_name="Station 1",
        service_address="https://wats.example.com",
        api_token=SECRET,
    )
    path = tmp_path / "config.json"
    config.save(path)
    loaded = ClientConfig.load_or_create(path)
    assert loaded.instance_name == "Station 1"
    assert loaded.service_address == "https://wats.example.com"
    assert loaded.api_token.get_secret_value() == SECRET
    assert json.loads(path.read_text())["api_token"] == SECRET


def test_seed_json_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "instance_name": "Production Station 1",
                "service_address": "https://your-server.wats.com",
                "api_token": "base64_encoded_token",
                "converter_path": "./converters",
                "queue_path": "./queue",
                "watch_paths": ["./test_data"],
                "auto_submit": True,
                "retry_failed": True,
            }
        )
    )
    config = ClientConfig.load_or_create(path)
    # Relative paths are relative to the config file, not the cwd.
    assert config.queue_dir == (tmp_path / "queue").resolve()
    assert config.converter_dir == (tmp_path / "converters").resolve()
    assert config.watch_dirs == [(tmp_path / "test_data").resolve()]
    assert config.done_dir_for(config.watch_dirs[0]) == config.watch_dirs[0] / "Done"


def test_load_or_create_writes_defaults(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "new.json"
    config = ClientConfig.load_or_create(path)
    assert path.exists()
    assert ClientConfig.load(path) == config


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_saved_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    ClientConfig(api_token=SECRET).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Saving over an existing world-readable file tightens it too.
    path.chmod(0o644)
    ClientConfig(api_token=SECRET).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_save_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    for n in range(3):
        ClientConfig(instance_name=f"s{n}").save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_token_never_in_repr_str_or_dump() -> None:
    config = ClientConfig(api_token=SECRET)
    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    assert SECRET not in config.model_dump_json()


def test_token_not_in_validation_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"api_token": SECRET, "max_concurrent_uploads": "many"}))
    with pytest.raises(ConfigError) as info:
        ClientConfig.load(path)
    assert SECRET not in str(info.value)
    assert "max_concurrent_uploads" in str(info.value)


def test_env_token_overrides_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    ClientConfig(api_token="from-file").save(path)
    monkeypatch.setenv(TOKEN_ENV_VAR, "from-env")
    config = ClientConfig.load(path)
    assert config.effective_token().get_secret_value() == "from-env"
    # Saving never writes the environment's token into the file.
    config.save(path)
    assert json.loads(path.read_text())["api_token"] == "from-file"
    monkeypatch.delenv(TOKEN_ENV_VAR)
    assert config.effective_token().get_secret_value() == "from-file"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"max_concurrent_uploads": "lots"}', "max_concurrent_uploads"),
        ('{"instance_nme": "x"}', "instance_nme: unknown key; did you mean 'instance_name'"),
        ('{"post_action": "burn"}', "post_action"),
        ('{"retry": {"initial_delay": -1}}', "retry.initial_delay"),
        ('{"retry": {"max_delay": 1, "initial_delay": 5}}', "max_delay must be at least"),
        ('{"service_address": "wats.example.com"}', "https://"),
        ('{"watch_paths": "C:/data"}', "watch_paths"),
        ('{"a": 1,}', "not valid JSON at line 1"),
        ('{"a": 1,\n}', "no comma after the last item"),
        ('{"watch_paths": ["C:\\TestResults"]}', "write Windows paths as C:/TestResults"),
        (
            '{"file_pattern": ["*.xml"], "retry": {"max_attemps": 3}}',
            "retry.max_attemps: unknown key; did you mean 'max_attempts'? Fix its spelling or "
            "remove it. Also file_pattern: unknown key; did you mean 'file_patterns'?",
        ),
        ("[1, 2]", "JSON object"),
        (
            '{"text_encoding": "utf8x"}',
            "text_encoding: 'utf8x' is not an encoding Python knows; use a name such as utf-8",
        ),
        ('{"text_encoding": "base64"}', "text_encoding: 'base64' is not an encoding Python"),
    ],
)
def test_invalid_config_is_one_line_naming_file_and_key(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "station.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        ClientConfig.load(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert expected in message


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pywats-client init"):
        ClientConfig.load(tmp_path / "nope.json")


def test_comments_survive_save(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"// note": "line 2 tester", "instance_name": "x"}')
    config = ClientConfig.load(path)
    config.instance_name = "y"
    config.save(path)
    data = json.loads(path.read_text())
    assert data["// note"] == "line 2 tester"
    assert data["instance_name"] == "y"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b'\xef\xbb\xbf{"instance_name": "notepad"}')
    assert ClientConfig.load(path).instance_name == "notepad"


def test_assignment_is_validated() -> None:
    config = ClientConfig()
    with pytest.raises(ValueError, match="post_action"):
        config.post_action = "shred"  # type: ignore[assignment]


def test_absolute_paths_stay_absolute(tmp_path: Path) -> None:
    queue = tmp_path / "elsewhere"
    config = ClientConfig.from_dict({"queue_path": str(queue)}, source=tmp_path / "c.json")
    assert config.queue_dir == queue


def test_env_token_blank_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV_VAR, "  ")
    assert ClientConfig(api_token="t").effective_token().get_secret_value() == "t"


def test_home_expansion() -> None:
    config = ClientConfig(queue_path=Path("~/q"))
    assert config.queue_dir == Path("~/q").expanduser()


def test_a_bad_proxy_is_explained_without_its_password() -> None:
    """Five problems are spelled out now: a proxy's user:password must not be one of them."""
    with pytest.raises(ConfigError) as info:
        ClientConfig.from_dict({"proxy": "op:S3cret@proxy:3128", "api_token": 5, "watch_paths": 1})
    message = str(info.value)
    assert "proxy: is not a URL" in message and "watch_paths" in message
    assert "S3cret" not in message
