"""The Faust adapter: the worker's app, agents, tables and timers around the funnel core.

Its public surface is ``stream.runtime.worker.Worker`` (started by ``funnel worker``). The
modules beside it are the worker's parts: ``fastpath`` (whole fetches to the worker),
``batching`` (state writes once per fetch), ``faustparts`` (tables, RocksDB, table manager),
``highwater`` (recovery on the embedded broker) and ``deadletter``. Nothing is imported here,
so importing a part does not build a Faust app.
"""
