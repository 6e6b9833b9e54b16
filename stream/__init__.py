"""funnel: exact, real-time marketing-and-sales funnel metrics from Kafka events."""

__version__ = "0.1.0"
