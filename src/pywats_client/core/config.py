"""Instance configuration: the seed's JSON ``ClientConfig`` plus what operators need.

Relative paths in a config file are resolved against the folder of that file,
so a station folder can be moved or copied as a whole. The API token is a
``SecretStr``: it never shows in ``repr``, logs or errors, and the file that
holds it is written owner-only.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from pywats_client._fsutil import atomic_write_text, ensure_private_dir
from pywats_client.core._validation import config_error_from_validation
from pywats_client.errors import ConfigError

__all__ = ["TOKEN_ENV_VAR", "ClientConfig", "PostAction", "RetryPolicy"]

#: Environment variable whose value, when set, replaces the token from the file.
TOKEN_ENV_VAR = "PYWATS_API_TOKEN"

PostAction = Literal["move", "delete", "keep", "zip"]

#: Keys starting with this are comments: kept on save, otherwise ignored.
COMMENT_PREFIX = "//"


class RetryPolicy(BaseModel):
    """Capped exponential backoff with full jitter for transient upload failures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_delay: float = Field(2.0, gt=0, description="Seconds before the first retry.")
    max_delay: float = Field(300.0, gt=0, description="Longest wait between two attempts, seconds.")
    max_attempts: int | None = Field(
        None,
        ge=1,
        description="Attempts before a report is moved to failed; null retries forever.",
    )

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> RetryPolicy:
        if self.max_delay < self.initial_delay:
            raise ValueError("max_delay must be at least initial_delay")
        return self


class ClientConfig(BaseModel):
    """Configuration of one station instance (one JSON file per instance)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # --- the seed's keys -----------------------------------------------------
    instance_name: str = Field(
        "pywats-station", min_length=1, description="Display name of this station instance."
    )
    service_address: str = Field(
        "", description="Base URL of the WATS server, e.g. https://acme.wats.com. Empty: offline."
    )
    api_token: SecretStr = Field(
        SecretStr(""),
        description=f"WATS API token (base64, as shown in WATS). {TOKEN_ENV_VAR} overrides it.",
    )
    converter_path: Path = Field(
        Path("converters"), description="Folder of converter plugins (*.py) for this instance."
    )
    queue_path: Path = Field(
        Path("queue"), description="Folder of this instance's durable report queue and lock."
    )
    watch_paths: list[Path] = Field(
        default_factory=list, description="Folders the testers write result files into."
    )
    auto_submit: bool = Field(True, description="Upload queued reports; false only queues them.")
    retry_failed: bool = Field(
        True,
        description="Retry transient upload failures automatically; false parks them in failed.",
    )

    # --- source-file lifecycle -------------------------------------------------
    done_path: Path | None = Field(
        None, description="Where converted sources go (post_action move). Default: <watch>/Done."
    )
    error_path: Path | None = Field(
        None, description="Where sources that failed to convert go. Default: <watch>/Error."
    )
    post_action: PostAction = Field(
        "move", description="What to do with a source once its report is queued."
    )
    file_patterns: list[str] = Field(
        default_factory=lambda: ["*"], description="Glob patterns of files to take."
    )
    ignore_patterns: list[str] = Field(
        default_factory=lambda: [
            "*.tmp",
            "*.part",
            "*.partial",
            "~$*",
            ".*",
            "Thumbs.db",
            "desktop.ini",
        ],
        description=(
            "Glob patterns never taken (temp files of writers, hidden files, the files "
            "Windows Explorer leaves in folders)."
        ),
    )
    recursive: bool = Field(False, description="Also watch sub-folders of the watch folders.")
    ready_after: float = Field(
        # 2 s, as the field notes advise: testers that write a result in pieces
        # pause for more than 1 s, and a piece taken early is parked as invalid.
        2.0,
        ge=0,
        description=(
            "Seconds a file must stay unchanged before it is taken. 2 s lets a tester "
            "pause between the pieces of a result; 0 suits testers that write a file "
            "elsewhere and move it in whole."
        ),
    )
    ready_marker: str | None = Field(
        None,
        description="If set (e.g. '.done'), a file is taken only once '<file><marker>' exists.",
    )
    rescan_interval: float = Field(
        30.0, gt=0, description="Seconds between full rescans of the watch folders."
    )
    max_queue_size: int | None = Field(
        None, ge=1, description="Stop taking files while this many reports are pending."
    )
    converter_timeout: float = Field(
        60.0, gt=0, description="Seconds a converter may run on one file before it is abandoned."
    )
    converters: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Settings per converter, keyed by converter name."
    )
    max_file_size: int = Field(
        64 * 1024 * 1024,
        ge=1,
        description=(
            "Bytes; larger source files are refused to Error. Converting a WSJF file "
            "takes about 21 times its size in memory for a moment (docs/benchmarks.md, "
            "one big result file): lower it on a PC with little memory and several stations."
        ),
    )
    text_encoding: str | None = Field(
        None, description="Encoding of text result files; null detects (BOM, UTF-8, cp1252)."
    )

    # --- upload -------------------------------------------
    max_concurrent_uploads: int = Field(5, ge=1, le=64, description="Uploads in flight at once.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="Upload retry policy.")
    request_timeout: float = Field(30.0, gt=0, description="Seconds per HTTP request.")
    ping_interval: float = Field(
        30.0, gt=0, description="Seconds between connection checks while connected."
    )
    archive_sent: bool = Field(
        False, description="Keep a copy of each accepted report in <queue>/sent."
    )
    upload_helper: Literal["auto", "always", "never"] = Field(
        "auto",
        description=(
            "Run the HTTP part of uploads in a child process of the worker, so a busy "
            "station uploads faster: 'auto' starts it once 100 reports go out within 5 s, "
            "if the PC has a core to spare (one helper per core but one, over all "
            "stations), and stops it after 60 s without uploads; 'always'; 'never' keeps "
            "one process per station."
        ),
    )

    # --- factory network ----------------------------------
    proxy: str | None = Field(
        None, description="HTTP(S) proxy URL; standard proxy environment variables also work."
    )
    ca_bundle: Path | None = Field(None, description="PEM file of the company CA(s) to trust.")
    verify_tls: bool = Field(True, description="Verify the server's TLS certificate.")
    client_cert: Path | None = Field(None, description="PEM client certificate, if required.")
    client_key: Path | None = Field(None, description="PEM key of client_cert, if separate.")

    # --- station identity on reports ----------------------
    station_name: str | None = Field(
        None, description="machineName for reports that do not set one. Default: host name."
    )
    location: str | None = Field(None, description="location for reports that do not set one.")
    purpose: str | None = Field(None, description="purpose for reports that do not set one.")

    # --- logging ------------------------------------------
    log_path: Path | None = Field(
        None, description="Log file of this instance. Default: the platform's log folder."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Least severe log level written."
    )

    _base_dir: Path | None = PrivateAttr(None)
    _comments: dict[str, Any] = PrivateAttr(default_factory=dict)

    # --- validation ---------------------------------------

    @field_validator("service_address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        value = value.strip()
        if value and not value.lower().startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not a URL; write it as https://your-server.wats.com")
        return value.rstrip("/")

    @field_validator("file_patterns", "ignore_patterns")
    @classmethod
    def _no_empty_patterns(cls, value: list[str]) -> list[str]:
        if any(not p.strip() for p in value):
            raise ValueError("patterns must not be empty strings")
        return value

    @field_validator("text_encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value:
            try:
                "".encode(value)  # a LookupError also for base64, zlib...: not text
            except LookupError:
                raise ValueError(
                    f"{value!r} is not an encoding Python knows; use a name such as utf-8, "
                    "cp1252 or utf-16, or null to detect it"
                ) from None
        return value or None

    @field_validator("proxy")
    @classmethod
    def _check_proxy(cls, value: str | None) -> str | None:
        if value and "://" not in value:
            # the value is not echoed: a proxy URL may carry user:password
            raise ValueError(
                "is not a URL; write it as http://[user:password@]proxy.example.com:3128"
            )
        return value or None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    # --- paths --------------------------------------------

    @property
    def base_dir(self) -> Path:
        """Folder relative paths are resolved against: the config file's, else the cwd."""
        return self._base_dir if self._base_dir is not None else Path.cwd()

    def resolve_path(self, path: Path) -> Path:
        """``path`` made absolute against :attr:`base_dir` (``~`` expanded)."""
        path = path.expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def queue_dir(self) -> Path:
        return self.resolve_path(self.queue_path)

    @property
    def converter_dir(self) -> Path:
        return self.resolve_path(self.converter_path)

    @property
    def watch_dirs(self) -> list[Path]:
        return [self.resolve_path(p) for p in self.watch_paths]

    def done_dir_for(self, watch_dir: Path) -> Path:
        """Where sources from ``watch_dir`` go after conversion."""
        return self.resolve_path(self.done_path) if self.done_path else watch_dir / "Done"

    def error_dir_for(self, watch_dir: Path) -> Path:
        """Where sources from ``watch_dir`` go when they cannot be converted."""
        return self.resolve_path(self.error_path) if self.error_path else watch_dir / "Error"

    @property
    def machine_name(self) -> str:
        """machineName for reports that do not name their station."""
        return self.station_name or socket.gethostname()

    # --- secrets ------------------------------------------

    def effective_token(self) -> SecretStr:
        """The token to send: ``PYWATS_API_TOKEN`` if set, else the configured one."""
        env = os.environ.get(TOKEN_ENV_VAR, "").strip()
        return SecretStr(env) if env else self.api_token

    # --- files --------------------------------------------

    @classmethod
    def from_dict(cls, data: Any, *, source: Path | None = None) -> ClientConfig:
        """Validate ``data``; errors become one :class:`ConfigError` naming the key."""
        if not isinstance(data, dict):
            raise ConfigError("must hold a JSON object ({...}) of settings", file=source)
        comments = {
            k: v for k, v in data.items() if isinstance(k, str) and k.startswith(COMMENT_PREFIX)
        }
        settings = {k: v for k, v in data.items() if k not in comments}
        try:
            config = cls.model_validate(settings)
        except ValidationError as exc:
            raise config_error_from_validation(exc, file=source, model=cls) from None
        config._comments = comments
        if source is not None:
            config._base_dir = source.resolve().parent
        return config

    @classmethod
    def load(cls, path: Path) -> ClientConfig:
        """Read a config file; a missing or invalid file raises :class:`ConfigError`."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise ConfigError(
                "file not found; create it with 'pywats-client init --config "
                f"{path}' or fix the path",
                file=path,
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot be read ({exc.strerror})", file=path) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
                f"{_json_hint(exc)}",
                file=path,
            ) from None
        return cls.from_dict(data, source=path)

    @classmethod
    def load_or_create(cls, path: Path) -> ClientConfig:
        """Load ``path``, or write a default config there first if it does not exist."""
        path = Path(path)
        if not path.exists():
            config = cls()
            config.save(path)
            return config
        return cls.load(path)

    def to_json_dict(self) -> dict[str, Any]:
        """The config as written to its file (token included, comments first)."""
        data = self.model_dump(mode="json")
        data["api_token"] = self.api_token.get_secret_value()
        return {**self._comments, **data}

    def save(self, path: Path) -> None:
        """Write atomically to ``path``, owner-only (the file holds the token)."""
        path = Path(path)
        ensure_private_dir(path.parent)
        atomic_write_text(path, json.dumps(self.to_json_dict(), indent=4) + "\n")
        self._base_dir = path.resolve().parent


def _json_hint(exc: json.JSONDecodeError) -> str:
    """What the two usual hand-editing slips on a station PC need to be fixed."""
    if "escape" in exc.msg:
        return (
            "; a backslash starts an escape in JSON: write Windows paths as "
            "C:/TestResults or C:\\\\TestResults"
        )
    if exc.doc[: exc.pos].rstrip().endswith(","):
        return "; JSON allows no comma after the last item: remove it"
    return ""
