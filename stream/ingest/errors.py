"""The gateway's exceptions, under the project's root.

    FunnelError
    └── IngestError        the gateway cannot do its job right now
        └── ProduceFailed  Kafka did not acknowledge every event of a request in time

A call that cannot be mapped is not an exception: it is a ``Refusal``, answered with 400.
"""

from stream.errors import FunnelError


class IngestError(FunnelError):
    """Root of the gateway's own errors."""


class ProduceFailed(IngestError):
    """Kafka did not acknowledge every event of a request in time; the client should retry."""
