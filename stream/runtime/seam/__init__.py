"""The one place the worker leans on private parts of its libraries, for speed.

- ``transport``: Faust's Kafka transport, registered as ``funnel://``, with a consumer that
  hands whole fetches to the worker and acknowledges them together (Faust's consumer and
  consumer thread, subclassed);
- ``producer``: records appended straight to aiokafka's producer queue as whole batches;
- ``rocksdb``: a Faust RocksDB store's per-partition databases, read and written directly;
- ``histogram``: many observations added to a prometheus_client histogram at once.

ruff's SLF001 (private member access) is on everywhere else. docs/internals.md lists each
internal used, why, and the test that checks it against the library's own method; the
library versions these modules were checked with are pinned there too. Nothing is imported
here, so importing one part does not import the others' libraries.
"""
