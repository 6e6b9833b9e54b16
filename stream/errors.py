"""The project's exceptions, under one root.

    FunnelError
    ├── ConfigError        a configuration file or environment value is refused (names the key)
    ├── BrokerUnavailable  the Kafka bootstrap servers cannot be reached
    ├── StateDirError      the local state directory cannot be used
    └── IngestError        the ingest gateway cannot do its job (stream/ingest/errors.py)

Bad input messages are data, not exceptions: they are classified, counted and dead-lettered.
Every ``FunnelError`` is shown by the command line as one line, without a traceback.
"""


class FunnelError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(FunnelError):
    """A configuration value is refused; the message names the key."""


class BrokerUnavailable(FunnelError):
    """The Kafka bootstrap servers cannot be reached."""


class StateDirError(FunnelError):
    """The local state directory (``FUNNEL_DATA_DIR``) is missing, unwritable or full."""
