"""The project's exceptions, under one root.

    FunnelError
    ├── ConfigError        a configuration file or environment value is refused (names the key)
    ├── BrokerUnavailable  the Kafka bootstrap servers cannot be reached
    ├── StateDirError      the local state directory cannot be used
    ├── StateTooLarge      a state record would exceed the producer's request limit (a bug)
    ├── MissingExtra       a command needs an optional part that is not installed (names the extra)
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


class StateTooLarge(FunnelError):
    """A key's state encodes to more than one produce request may carry.

    The core bounds every state (``stream.core.bounds``), so this is a bug; the worker stops
    before storing or sending it, naming the table and the key's length, never the key.
    """


class MissingExtra(FunnelError):
    """A command needs an optional dependency that is not installed; the message names the extra.

    The production image installs none of the extras (``embedded``: the embedded broker;
    ``demo``: the demo's terminal view); see :func:`require_extra`.
    """


def require_extra(extra: str, *modules: str) -> None:
    """Raise :class:`MissingExtra` unless every one of ``modules`` (top-level names) imports."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingExtra(
                f"needs the '{extra}' extra ({module} is not installed): "
                f"pip install 'funnel[{extra}]'"
            ) from exc
