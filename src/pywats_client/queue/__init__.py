"""The durable on-disk report queue of one instance (see docs/internals.md).

``QueueStore`` is blocking and thread-safe; the uploader loop around it is
:class:`pywats_client.services.QueueService`.
"""

from pywats_client.queue._envelope import (
    CorruptQueueFile,
    Envelope,
    NewReport,
    QueueItem,
    QueueState,
)
from pywats_client.queue.store import QueueCounts, QueueStore, RequeueResult

__all__ = [
    "CorruptQueueFile",
    "Envelope",
    "NewReport",
    "QueueCounts",
    "QueueItem",
    "QueueState",
    "QueueStore",
    "RequeueResult",
]
