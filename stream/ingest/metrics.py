"""The gateway's own Prometheus metrics (metrics.md, "Ingest gateway"), built per registry.

Labels are bounded by construction: ``endpoint`` is one of the gateway's routes, ``status``
one of the codes it answers with, ``source`` ``segment`` or ``hubspot``, ``outcome`` one of
:data:`OUTCOMES`. Nothing from a request body becomes a label.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

Source: TypeAlias = Literal["segment", "hubspot"]
Outcome: TypeAlias = Literal["produced", "ignored", "refused", "failed"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("produced", "ignored", "refused", "failed")
"""produced: acknowledged by Kafka; ignored: nothing for the funnel (an unconfigured track
event, an identify without the stage trait, screen, group, alias); refused: could not be
mapped (400); failed: Kafka did not acknowledge in time (503, the client retries)."""
ENDPOINTS: Final = ("batch", "track", "identify", "page", "hubspot", "health", "metrics")
PRODUCE_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class IngestMetrics:
    """Requests by endpoint and status, events by source and outcome, produce latency."""

    def __init__(self, registry: CollectorRegistry) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.requests = Counter(
            "funnel_ingest_requests",
            "HTTP requests answered, by endpoint and status code.",
            ["endpoint", "status"],
            registry=registry,
        )
        self.events = Counter(
            "funnel_ingest_events",
            "Segment calls and HubSpot events received, by source and outcome.",
            ["source", "outcome"],
            registry=registry,
        )
        self.produce_latency = Histogram(
            "funnel_ingest_produce_latency_seconds",
            "From a request's events handed to the producer to Kafka's acknowledgement of all.",
            buckets=PRODUCE_BUCKETS,
            registry=registry,
        )
        for source in ("segment", "hubspot"):
            for outcome in OUTCOMES:
                self.events.labels(source, outcome)
        for endpoint in ENDPOINTS:
            self.requests.labels(endpoint, "200")

    def count_events(self, source: Source, outcome: Outcome, n: int) -> None:
        """Add ``n`` events with ``outcome`` (nothing when ``n`` is 0)."""
        if n:
            self.events.labels(source, outcome).inc(n)
