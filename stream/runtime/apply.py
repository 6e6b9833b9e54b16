"""The worker's per-record loop: one partition's records of a fetch, classified and applied.

Separate from ``worker.py`` (the Faust layer) so that it is compiled with the core
(stream/compiled.py): it runs once per input message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any, cast

from schemas import Event, Rejection, TopicKind, classify
from stream.core.eventtime import event_seconds
from stream.core.funnel import Funnel

log = logging.getLogger("stream.runtime.worker")

PROCESSING_ERROR = "processing_error"
"""Dead-letter reason for a valid event the core failed on (a bug): kept, counted, never lost."""


def apply_records(
    funnel: Funnel,
    records: Sequence[Any],
    kind: TopicKind,
    apply: Callable[[Any, float], str],
    where: tuple[str, int],
    stages: Collection[str],
    now: float,
    watermark: float,
    rejected: list[tuple[Any, str]],
    statuses: dict[str, int],
) -> tuple[int, float]:
    """Classify each record (``classify``, clock ``now``), apply each event with ``apply``.

    A rejected record, and one the core failed on, is appended to ``rejected`` with its
    reason; every record's status (applied, duplicate, a rejection reason) is counted in
    ``statuses``. ``where`` (input topic, partition) names the records in a failure's log
    line. Returns the number of events older than the oldest retained window, and the
    partition's ``watermark`` moved to the latest event applied.
    """
    late = applied = 0  # "applied", most records, counted here and added to ``statuses`` once
    # Names from modules that are not compiled are looked up in this module's globals at each
    # use: once here, not once per record.
    check, rejection = classify, Rejection
    for record in records:
        result = check(kind, record.key, record.value, stages=stages, now=now)
        if type(result) is rejection:  # final: a pointer comparison once compiled
            reason: str = result.reason
            rejected.append((record, reason))
            statuses[reason] = statuses.get(reason, 0) + 1
            continue
        event = cast(Event, result)  # not a Rejection: tested above
        t = event_seconds(event.occurred_at)
        if funnel.is_late(t):
            late += 1
        try:
            status = apply(event, t)
        except Exception:
            # A bug, not bad input: dead-letter it, loudly, so nothing is lost.
            log.exception(
                "processing failed topic=%s partition=%s offset=%s", *where, record.offset
            )
            status = PROCESSING_ERROR
            rejected.append((record, PROCESSING_ERROR))
        if status == "applied":
            applied += 1
            if t > watermark:
                watermark = t
        else:
            statuses[status] = statuses.get(status, 0) + 1
    if applied:
        statuses["applied"] = statuses.get("applied", 0) + applied
    return late, watermark
