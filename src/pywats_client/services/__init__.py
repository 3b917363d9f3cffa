"""Background services of one instance: connection monitor, uploader, HTTP client.

Names load on first use: the upload helper process needs only the HTTP client,
not the watcher and the queue (and their imports).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pywats_client import _lazy

if TYPE_CHECKING:
    from pywats_client.services.api_client import WATSApiClient
    from pywats_client.services.connection import ConnectionService
    from pywats_client.services.file_watcher import FileWatcher
    from pywats_client.services.queue import QueueService

__all__ = ["ConnectionService", "FileWatcher", "QueueService", "WATSApiClient"]

__getattr__, __dir__ = _lazy.lazy_exports(
    globals(),
    {
        "ConnectionService": "pywats_client.services.connection",
        "FileWatcher": "pywats_client.services.file_watcher",
        "QueueService": "pywats_client.services.queue",
        "WATSApiClient": "pywats_client.services.api_client",
    },
)
