"""The funnel's event contract: models, message classification and JSON Schemas.

Pure pydantic, with no Kafka or Faust import, so the stream workers, the reports and the
tests all validate events with the same code.
"""

from schemas.classify import REJECT_REASONS, Rejection, RejectReason, TopicKind, classify
from schemas.events import EVENT_MODELS, Event, LeadCreated, StageChanged, Visit

__all__ = [
    "EVENT_MODELS",
    "REJECT_REASONS",
    "Event",
    "LeadCreated",
    "RejectReason",
    "Rejection",
    "StageChanged",
    "TopicKind",
    "Visit",
    "classify",
]
