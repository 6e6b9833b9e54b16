"""funnel: exact, real-time marketing-and-sales funnel metrics from Kafka events."""

from stream.compiled import use_source_when_stale

__version__ = "0.1.0"

use_source_when_stale()
