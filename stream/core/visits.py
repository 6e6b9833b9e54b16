"""Per-visitor state: the visits applied recently, for duplicate detection and window counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from stream.core.bounds import MAX_VISIT_IDS, dedupe_key, earliest
from stream.core.codec import decode_json, encode_json, json_float
from stream.core.windows import WindowSpec, next_window_start, previous_window_start, window_start


@dataclass(slots=True)
class VisitorState:
    """Visits of one visitor within the duplicate horizon; the ``visitor_states`` table value.

    ``visits`` maps the ``dedupe_key`` of each visit's ``event_id`` to its time, in the order
    applied, at most ``MAX_VISIT_IDS`` of them. A visit forgotten for that cap (not for the
    horizon) is still counted in ``cells``, by the span of time that falls in the same window
    of every configured size (``VisitCells``), so the window counts rebuilt from the states
    stay exact. ``latest`` is the latest visit time applied (the partition's watermark).
    """

    partition: int
    visits: dict[str, float] = field(default_factory=dict)  # dedupe key -> occurred_at
    cells: dict[float, int] = field(default_factory=dict)  # cell start -> visits forgotten
    latest: float = 0.0
    # At most the oldest time in ``visits``, once known (not stored): a visitor with
    # thousands of visits is not scanned for each new one.
    oldest: float | None = field(default=None, compare=False, repr=False)

    def __init__(
        self,
        partition: int,
        visits: dict[str, float] | None = None,
        cells: dict[float, int] | None = None,
        latest: float = 0.0,
        oldest: float | None = None,
    ) -> None:
        # Written out, not generated: stream/compiled.py ("__init__") says why.
        self.partition = partition
        self.visits = {} if visits is None else visits
        self.cells = {} if cells is None else cells
        self.latest = latest
        self.oldest = oldest

    def encode(self) -> bytes:
        """Compact JSON for the state table."""
        return encode_json([self.partition, self.visits, list(self.cells.items()), self.latest])

    @staticmethod
    def encode_first(partition: int, key: str, t: float, horizon_start: float) -> bytes:
        """``encode`` of a new visitor's state after its first visit (the hot path: most
        visits are a visitor's first), without building the state: its JSON joined from
        the pieces, the time written by the encoder ``encode`` uses. ``key`` is a
        ``dedupe_key`` (URL-safe base64), which JSON writes as it is."""
        at, opening = json_float(t), str(partition).encode()
        if t >= horizon_start:
            return b"".join((b"[", opening, b',{"', key.encode(), b'":', at, b"},[],", at, b"]"))
        return b"".join((b"[", opening, b",{},[],", at, b"]"))

    @staticmethod
    def decode(raw: bytes) -> VisitorState:
        """Inverse of ``encode`` (also reads states written before the ids were digested)."""
        fields = decode_json(raw)
        if len(fields) == 2:  # [partition, {event_id: t}]
            partition, visits = fields
            keyed = {dedupe_key(eid): t for eid, t in visits.items()}
            return VisitorState(partition, keyed, {}, max(visits.values(), default=0.0))
        partition, visits, cells, latest = fields
        return VisitorState(partition, visits, {c: n for c, n in cells} if cells else {}, latest)

    @staticmethod
    def clock_facts(raw: bytes) -> tuple[int, float]:
        """(partition, latest visit time) of an encoded state, without building it."""
        fields = decode_json(raw)
        if len(fields) == 2:
            return fields[0], max(fields[1].values(), default=0.0)
        return fields[0], fields[3]

    def add_visit(
        self, key: str, t: float, horizon_start: float, cells: VisitCells, watermark: float
    ) -> int:
        """Record a new visit, then forget those before the duplicate horizon and, past
        ``MAX_VISIT_IDS``, the ids applied longest ago; returns how many ids the cap forgot.

        ``watermark`` is the partition's: cells no exported window can need are dropped.
        """
        visits = self.visits
        visits[key] = t
        if t > self.latest:
            self.latest = t
        if self.oldest is not None and t < self.oldest:
            self.oldest = t
        self.forget_before(horizon_start)
        over = len(visits) - MAX_VISIT_IDS
        if over <= 0:
            return 0
        for _ in range(over):
            first = next(iter(visits))
            cells.add(self.cells, visits.pop(first), watermark)
        # ``oldest`` stays a lower bound of the times kept: nothing older was added.
        return over

    def forget_before(self, horizon_start: float) -> None:
        """Drop visits older than the duplicate horizon, keeping the state bounded."""
        visits = self.visits
        oldest = self.oldest
        if oldest is None:
            oldest = earliest(visits)
        if oldest < horizon_start:
            for eid in [eid for eid, t in visits.items() if t < horizon_start]:
                del visits[eid]
            oldest = earliest(visits)
        self.oldest = oldest

    def visit_times(self) -> list[tuple[float, int]]:
        """(time, visits) whose windows the state counts: each kept visit, then each cell."""
        return [(t, 1) for t in self.visits.values()] + list(self.cells.items())


class VisitCells:
    """Where a forgotten visit is still counted: the span of time that lies in the same
    window of every configured size (the latest of its windows' starts names it).

    A cell is kept while any of its windows can still be exported: the current or the
    previous window of some size at the partition's watermark.
    """

    __slots__ = ("_last", "_specs")

    def __init__(self, specs: tuple[WindowSpec, ...]) -> None:
        self._specs = specs
        self._last = (0.0, 0.0)  # the last cell found: [start, end)

    def cell(self, t: float) -> float:
        """The cell of instant ``t``."""
        start, end = self._last
        if start <= t < end:
            return start
        specs = self._specs
        starts = [window_start(spec, t) for spec in specs]
        start = max(starts)
        end = min(next_window_start(spec, s) for spec, s in zip(specs, starts, strict=True))
        self._last = (start, end)
        return start

    def keep_since(self, watermark: float) -> float:
        """Cells starting before this hold no window that can be exported again."""
        return min(
            previous_window_start(spec, window_start(spec, watermark)) for spec in self._specs
        )

    def add(self, cells: dict[float, int], t: float, watermark: float) -> None:
        """Count a forgotten visit at ``t`` in ``cells``."""
        cell = self.cell(t)
        n = cells.get(cell)
        if n is not None:
            cells[cell] = n + 1
            return
        since = self.keep_since(watermark)
        if cell < since:
            return  # in no window that can be exported again
        for old in [c for c in cells if c < since]:
            del cells[old]
        cells[cell] = 1
