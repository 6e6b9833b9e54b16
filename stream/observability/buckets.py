"""The histogram buckets fixed by metrics.md, in seconds.

Kept apart from :mod:`stream.observability.metrics` (which configures prometheus_client when
imported) so the reports can bin latencies exactly as the dashboards do.
"""

LATENCY_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 604800)
STAGE_TIME_BUCKETS = (3600, 21600, 86400, 259200, 604800, 1209600, 2592000, 5184000, 7776000)
DELAY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
