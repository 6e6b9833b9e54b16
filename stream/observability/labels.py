"""Bounded label values: what an event may put into a metric label.

Values from events (``source``, ``campaign``, ``team``) are used as-is only if they are in the
configured allow-list or among the first ``max_values`` distinct values seen; everything else
becomes ``other``. That keeps every metric's cardinality bounded whatever producers send.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

OTHER = "other"


class LabelBound:
    """Maps raw values of one label to bounded ones, counting the overflow."""

    def __init__(
        self,
        label: str,
        allow: Iterable[str] | None,
        max_values: int,
        on_overflow: Callable[[str, int], None] | None = None,
        always: Iterable[str] = (),
    ) -> None:
        self.label = label
        self._allow = None if allow is None else frozenset(allow)
        self._max = max_values
        self._on_overflow = on_overflow
        self._known: set[str] = set(always) | set(self._allow or ())

    def __call__(self, value: str, *, count: int = 1) -> str:
        """The label value to use for ``value``, seen in ``count`` events.

        ``count=0`` for gauges read at scrape time: a value folded into ``other`` there is
        not an event, and counting it would make the overflow counter grow with every scrape.
        """
        if value in self._known:
            return value
        if self._allow is None and len(self._known) < self._max:
            self._known.add(value)
            return value
        if count and self._on_overflow is not None:
            self._on_overflow(self.label, count)
        return OTHER

    @property
    def known(self) -> frozenset[str]:
        """Every value kept as-is so far."""
        return frozenset(self._known)
