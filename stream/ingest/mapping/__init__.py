"""Segment-spec calls and HubSpot webhooks → contract events: pure Python, no I/O.

The mappers take parsed JSON and return, per call or webhook event, the Kafka message to
produce (topic kind, key, value: a contract event that ``schemas.classify`` accepts), a
``Refusal`` naming the field that could not be mapped, or ``None`` when the call carries
nothing for the funnel (an identify without the stage trait, an unconfigured track event).
"""

from stream.ingest.mapping.common import OutMessage, Refusal, Result
from stream.ingest.mapping.hubspot import HubSpotMapper, SignatureError, verify_signature_v3
from stream.ingest.mapping.segment import SEGMENT_CALLS, SegmentMapper

__all__ = [
    "SEGMENT_CALLS",
    "HubSpotMapper",
    "OutMessage",
    "Refusal",
    "Result",
    "SegmentMapper",
    "SignatureError",
    "verify_signature_v3",
]
