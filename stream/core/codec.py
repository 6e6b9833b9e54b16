"""JSON for the state tables: compact bytes, fast both ways."""

from __future__ import annotations

from typing import Any, Final

import orjson

# Final: compiled callers read them as constants, not from a module's globals per call.
decode_json: Final = orjson.loads
_dumps: Final = orjson.dumps


def json_float(x: float) -> bytes:
    """``x`` as JSON text, written as ``encode_json`` writes it within a value: a piece for
    a caller that joins a small value from its pieces (the result is not kept)."""
    text: bytes = _dumps(x)
    return text


def encode_json(value: Any) -> bytes:
    """Compact JSON of ``value`` as bytes of exactly its length.

    ``orjson.dumps`` returns bytes that keep orjson's 4 KiB working buffer; states are held
    per batch, and for good by the memory store, so the result is copied into an object of
    its own size (docs/performance.md, 7.): joined with nothing, which allocates the result
    once at its length and copies into it (a third of ``bytes(memoryview(...))``'s time).
    """
    return b"".join((_dumps(value), b""))
