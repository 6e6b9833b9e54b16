"""A min-heap of times that also removes: the open-lead index of a partition view.

A partition view must know, for a million open leads, the earliest deadline still to pass
and the oldest clock start per team. It does not need to know *which* lead is which: the
caller always knows the lead's previous deadline and start (they are derived from its stored
state), so removal can be by value. A ``TimeHeap`` is a multiset of floats: a plain list
heap plus a count of removed values, skipped when they reach the top. A lead costs one float
in the list (32 bytes) instead of a dict entry, its id and a tuple per heap (about 400).
"""

from __future__ import annotations

import heapq
from collections import Counter

# Removed values are dropped eagerly once they make up half the heap and at least this many.
_COMPACT_AT = 1024


class TimeHeap:
    """A multiset of times with ``min``, removal by value and popping everything below."""

    __slots__ = ("_heap", "_n_removed", "_removed")

    def __init__(self) -> None:
        self._heap: list[float] = []
        self._removed: Counter[float] = Counter()
        self._n_removed = 0

    def __len__(self) -> int:
        return len(self._heap) - self._n_removed

    @property
    def stored(self) -> int:
        """Values held in memory: the live ones and removed ones not dropped yet."""
        return len(self._heap)

    def push(self, t: float) -> None:
        heapq.heappush(self._heap, t)

    def remove(self, t: float) -> None:
        """Remove one ``t`` (which must be present)."""
        if self._heap and self._heap[0] == t:
            heapq.heappop(self._heap)
            return
        self._removed[t] += 1
        self._n_removed += 1
        if self._n_removed >= _COMPACT_AT and 2 * self._n_removed > len(self._heap):
            self._compact()

    def min(self) -> float | None:
        """The smallest time present, or None."""
        heap, removed = self._heap, self._removed
        while heap:
            t = heap[0]
            n = removed.get(t)
            if not n:
                return t
            self._forget_removed(t, n)
            heapq.heappop(heap)
        return None

    def pop_below(self, clock: float) -> list[float]:
        """Take out and return every time strictly below ``clock``."""
        heap, removed, found = self._heap, self._removed, []
        while heap and heap[0] < clock:
            t = heapq.heappop(heap)
            n = removed.get(t)
            if n:
                self._forget_removed(t, n)
            else:
                found.append(t)
        return found

    def _forget_removed(self, t: float, n: int) -> None:
        if n == 1:
            del self._removed[t]
        else:
            self._removed[t] = n - 1
        self._n_removed -= 1

    def _compact(self) -> None:
        removed, kept = self._removed, []
        for t in self._heap:
            n = removed.get(t)
            if n:
                removed[t] = n - 1
            else:
                kept.append(t)
        heapq.heapify(kept)
        self._heap, self._removed, self._n_removed = kept, Counter(), 0
