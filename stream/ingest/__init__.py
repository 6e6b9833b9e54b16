"""``funnel ingest``: an HTTP gateway that turns Segment-spec calls and HubSpot webhooks into
contract events on the input topics (docs/ingest.md).

``mapping/`` is pure (calls → events, HubSpot's signature); ``producer`` is the Kafka side;
``server`` the aiohttp routes; ``run`` the process around them; ``metrics`` the gateway's
own. Nothing here imports the worker.
"""

from stream.ingest.errors import IngestError, ProduceFailed
from stream.ingest.run import run_gateway, serve
from stream.ingest.server import BATCH_LIMIT, CALL_LIMIT, Gateway

__all__ = [
    "BATCH_LIMIT",
    "CALL_LIMIT",
    "Gateway",
    "IngestError",
    "ProduceFailed",
    "run_gateway",
    "serve",
]
