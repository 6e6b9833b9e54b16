"""First entries into the stages, as times per (stage, source): 8 bytes an entry.

A month of a busy site has millions of visits; each is one ``float`` in an ``array('d')``,
sorted in chunks of ``CHUNK`` as they fill, and counted over a period with ``bisect``.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator

__all__ = ["CHUNK", "Entries"]

CHUNK = 1 << 18  # entries sorted at a time (sorting makes a list of that many floats)


class _Times:
    """The times of one (stage, source): sorted chunks, and the latest ones unsorted."""

    __slots__ = ("chunks", "pending")

    def __init__(self) -> None:
        self.chunks: list[array[float]] = []
        self.pending: array[float] = array("d")

    def seal(self) -> None:
        if self.pending:
            self.chunks.append(array("d", sorted(self.pending)))
            self.pending = array("d")

    def count(self, start: float, end: float) -> int:
        """Times in ``[start, end)`` (sealed)."""
        return sum(bisect_left(c, end) - bisect_left(c, start) for c in self.chunks)

    def first(self, start: float, end: float) -> float | None:
        """The earliest time in ``[start, end)``, None if there is none (sealed)."""
        found = [c[i] for c in self.chunks if (i := bisect_left(c, start)) < len(c)]
        best = min(found, default=None)
        return best if best is not None and best < end else None


class Entries:
    """First entries: ``add`` (or ``merge``) them in any order, then count them (which sorts
    the new ones)."""

    def __init__(self) -> None:
        self._times: dict[tuple[str, str], _Times] = {}  # in the order first added

    def add(self, stage: str, source: str, at: float) -> None:
        """One first entry into ``stage`` at ``at``, credited to ``source``."""
        times = self._times.get((stage, source))
        if times is None:
            times = self._times[(stage, source)] = _Times()
        times.pending.append(at)
        if len(times.pending) >= CHUNK:
            times.seal()

    def seal(self) -> None:
        """Sort what was added since the last ``seal``."""
        for times in self._times.values():
            times.seal()

    def __len__(self) -> int:
        self.seal()
        return sum(len(c) for t in self._times.values() for c in t.chunks)

    def count(self, stage: str, start: float, end: float) -> int:
        """Entries into ``stage`` in ``[start, end)``."""
        self.seal()
        return sum(times.count(start, end) for (s, _), times in self._times.items() if s == stage)

    def by_source(self, stage: str, start: float, end: float) -> Iterator[tuple[str, int]]:
        """(source, entries into ``stage`` in ``[start, end)``) for sources with any, in the
        order of their earliest entry in the period (ties: by source), whatever the order
        the entries were added in."""
        self.seal()
        found = []
        for (s, source), times in self._times.items():
            if s != stage:
                continue
            first = times.first(start, end)
            if first is not None:
                found.append((first, source, times.count(start, end)))
        found.sort()
        return ((source, n) for _, source, n in found)

    def merge(self, other: Entries) -> None:
        """Add every entry of ``other`` (the entries of other partitions)."""
        for stage, source, chunks in other.sorted_parts():
            self.add_sorted(stage, source, chunks)

    def sorted_parts(self) -> Iterator[tuple[str, str, list[array[float]]]]:
        """(stage, source, sorted chunks of times) of every (stage, source), sealed."""
        self.seal()
        for (stage, source), times in self._times.items():
            yield stage, source, times.chunks

    def add_sorted(self, stage: str, source: str, chunks: list[array[float]]) -> None:
        """Add sorted chunks of entry times of (``stage``, ``source``) (``sorted_parts``)."""
        times = self._times.get((stage, source))
        if times is None:
            times = self._times[(stage, source)] = _Times()
        times.chunks.extend(chunks)

    def earliest(self) -> float | None:
        """The earliest entry of all, None if there is none."""
        self.seal()
        firsts = [c[0] for t in self._times.values() for c in t.chunks if c]
        return min(firsts, default=None)
