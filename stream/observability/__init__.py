"""What the worker shows: Prometheus metrics, bounded labels, targets, scraping, dashboards.

``buckets`` holds the contract's histogram buckets without touching prometheus_client, so the
reports can share them.
"""

from stream.observability.buckets import DELAY_BUCKETS, LATENCY_BUCKETS
from stream.observability.labels import OTHER, LabelBound
from stream.observability.metrics import FunnelMetrics
from stream.observability.scrape import Samples, ScrapeError, fetch_metrics, parse_metrics
from stream.observability.state_gauges import StateCollector
from stream.observability.targets import register_targets

__all__ = [
    "DELAY_BUCKETS",
    "LATENCY_BUCKETS",
    "OTHER",
    "FunnelMetrics",
    "LabelBound",
    "Samples",
    "ScrapeError",
    "StateCollector",
    "fetch_metrics",
    "parse_metrics",
    "register_targets",
]
