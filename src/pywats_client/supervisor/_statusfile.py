"""``<state_dir>/status.json``: what the supervisor last knew, for people and programs.

Written atomically (temp + fsync + replace) every ``status_interval`` and on
every state change; readers see the old or the new document, never half.
Format (``"format": 1``)::

    {"format": 1,
     "supervisor": {"pid", "create_time", "started_at", "updated_at", "registry",
                    "metrics_url", "log_dir", "last_error"},
     "instances": [{"name", "state", "enabled", "pid", "started_at", "uptime_s",
                    "restarts", "last_exit", "last_error", "last_error_at", "config_problem",
                    "last_heartbeat_at",
                    "heartbeat_age_s", "next_restart_at", "rss", "cpu",
                    "log_path", "config_path", "queue_path", "snapshot"}, ...]}

Times ending in ``_at`` are wall-clock epoch seconds (display only). Nothing
in it is secret: the snapshot carries counters and states, never the token.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from pywats_client._fsutil import atomic_write_text
from pywats_client.errors import FatalError

__all__ = ["STATUS_FORMAT", "STATUS_NAME", "read_status", "write_status"]

STATUS_NAME = "status.json"
STATUS_FORMAT = 1
#: While the supervisor replaces the file (Windows refuses a read then), a
#: reader tries again a few times.
_READ_RETRIES = 5
_RETRY_SLEEP = 0.02


def write_status(path: Path, document: dict[str, Any]) -> bool:
    """Atomically replace ``path``; False if it stayed locked by readers (try next time).

    The replace itself waits out a reader's brief hold on Windows
    (``_fsutil.replace_file``).
    """
    try:
        atomic_write_text(path, json.dumps(document, indent=1, default=str) + "\n", sync_dir=False)
    except PermissionError:
        return False
    return True


def read_status(path: Path) -> dict[str, Any] | None:
    """The last status document, or None if absent, damaged or of another format.

    Raises :class:`~pywats_client.errors.FatalError` when this user may not read it.
    """
    for _ in range(_READ_RETRIES):
        try:
            text = path.read_text(encoding="utf-8")
            break
        except FileNotFoundError:
            return None
        except PermissionError:  # being replaced on Windows
            time.sleep(_RETRY_SLEEP)
        except OSError:
            return None
    else:
        # Still refused after the retries: not a replace in progress but a folder
        # this user may not read. Saying "no supervisor" would be a lie.
        raise FatalError(
            f"{path}: permission denied; run this as the user the supervisor runs as "
            "(or an administrator/root)"
        )
    with contextlib.suppress(ValueError):
        data = json.loads(text)
        if isinstance(data, dict) and data.get("format") == STATUS_FORMAT:
            return data
    return None
