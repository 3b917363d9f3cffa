"""Background services of one instance: connection monitor, uploader, HTTP client."""

from pywats_client.services.api_client import WATSApiClient
from pywats_client.services.connection import ConnectionService
from pywats_client.services.file_watcher import FileWatcher
from pywats_client.services.queue import QueueService

__all__ = ["ConnectionService", "FileWatcher", "QueueService", "WATSApiClient"]
