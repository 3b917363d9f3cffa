"""Wait for any of many pipes and process sentinels, past Windows' handle limit.

``multiprocessing.connection.wait`` on Windows hands all objects to one
``WaitForMultipleObjects``, which takes at most 63 of them from the main
thread before Python 3.13 (3.13 batches larger sets itself). The supervisor
waits on two per running worker (its sentinel and its event pipe), so 32
stations would crash it. Past the limit this waits on the first chunk (which
holds the supervisor's own wake-up pipe) in short slices and polls the others
between them: a worker's exit or message is seen within one slice.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import wait
from typing import Any

__all__ = ["wait_any"]

#: Objects one ``wait`` call may take on this Python (``None``: no limit).
CHUNK: int | None = 63 if sys.platform == "win32" and sys.version_info < (3, 13) else None
#: Longest block on the first chunk before the other chunks are polled again.
SLICE = 0.1


def wait_any(objects: Sequence[Any], timeout: float) -> list[Any]:
    """The objects that are ready, waiting up to ``timeout`` s for the first."""
    if CHUNK is None or len(objects) <= CHUNK:
        return wait(objects, timeout)
    chunks = [objects[i : i + CHUNK] for i in range(0, len(objects), CHUNK)]
    deadline = time.monotonic() + timeout
    while True:
        ready = [obj for chunk in chunks for obj in wait(chunk, 0)]
        remaining = deadline - time.monotonic()
        if ready or remaining <= 0:
            return ready
        ready = wait(chunks[0], min(remaining, SLICE))
        if ready:
            return ready + [obj for chunk in chunks[1:] for obj in wait(chunk, 0)]
