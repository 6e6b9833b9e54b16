"""The Faust adapter: the worker's app, agents, tables and timers around the funnel core.

Its public surface is ``stream.runtime.worker.Worker`` (started by ``funnel worker``). The
modules beside it are the worker's parts: ``batching`` (state writes once per fetch),
``faustparts`` (tables, RocksDB settings, table manager) and ``deadletter``. ``seam/`` holds
every use of a library's private parts (docs/internals.md): the worker's Kafka transport
(``funnel://``, the consumer fast path), the producer queue, the RocksDB store and bulk
histogram updates. Nothing is imported here, so importing a part does not build a Faust app.
"""
