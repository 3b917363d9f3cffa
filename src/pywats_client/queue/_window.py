"""A bounded in-memory view of the smallest (next due) pending file names.

The queue never holds all pending names: a scan keeps the ``capacity``
smallest names, and ``bound`` remembers the largest of them when more exist
on disk. Invariant: every pending name below ``bound`` that is not in flight
is in the window, so popping from the window is popping from the whole queue.
Names added by this process (new or rescheduled reports) join the window only
when they fall below ``bound``; larger ones wait on disk for the next scan.
"""

from __future__ import annotations

import heapq

__all__ = ["Window"]


class Window:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.bound: str | None = None
        self._heap: list[str] = []
        self._members: set[str] = set()

    def __len__(self) -> int:
        return len(self._members)

    def reset(self, smallest: list[str], *, more_on_disk: bool, capacity: int) -> None:
        """Load the result of a scan: ``smallest`` sorted ascending."""
        self.capacity = capacity
        self._heap = list(smallest)  # a sorted list is a valid heap
        self._members = set(smallest)
        self.bound = smallest[-1] if more_on_disk and smallest else None

    def offer(self, name: str) -> bool:
        """Add ``name`` if it belongs in the window; returns whether it was added."""
        if name in self._members or (self.bound is not None and name > self.bound):
            return False
        heapq.heappush(self._heap, name)
        self._members.add(name)
        if len(self._members) > 2 * self.capacity:
            self._trim()
        return True

    def peek(self) -> str | None:
        return self._heap[0] if self._heap else None

    def pop(self) -> str:
        name = heapq.heappop(self._heap)
        self._members.discard(name)
        return name

    def _trim(self) -> None:
        keep = heapq.nsmallest(self.capacity, self._heap)
        self._heap = keep
        self._members = set(keep)
        self.bound = keep[-1]
