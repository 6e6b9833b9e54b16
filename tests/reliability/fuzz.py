"""Hostile input for the bad-input tests, generated with hypothesis.

Hypothesis draws the messages here, in-process and deterministically (``derandomize``); the
test then sends the whole corpus through one real worker, since starting a worker per example
would take seconds each. Shrinking is off: a failure names the offending source offset
through the dead-letter comparison instead.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from stream.config.topics import TopicNames
from tests.reliability.support import START, Message, at

TYPES = {"visit": "visits", "lead_created": "leads", "stage_changed": "transitions"}
STAGES = ("lead", "mql", "sql", "opportunity", "customer", "contacted", "disqualified", "won")
# Strings that break naive code: control and format characters, a BOM, right-to-left
# override, combining marks, astral planes, a lone surrogate, the longest allowed ids and
# one past them.
EDGE_STRINGS = (
    "",
    "\x00",
    "\ufeff",
    "\u202eevil",
    "e\u0301\u0301\u0301",
    "\U0010ffff\U0001f600",
    "\ud800",
    "\u200d" * 64,
    "x" * 64,
    "x" * 65,
    "i" * 128,
    "i" * 129,
    "null",
    "-1",
    "1e999",
)
TIMES = (
    at(START),
    at(START + 0.123),
    "2026-11-18T10:13:20",  # naive
    "2026-11-18T10:13:20+14:00",
    "2026-11-18 10:13:20Z",
    "2026-02-30T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",  # the future
    "1795000000",
    "",
)
# A lead's events share one event-id space across the two lead topics, which a worker reads
# in any interleaving. The contract recognises a duplicate only within the duplicate horizon
# (docs/semantics.md): a lead event dated 2,000 years back has its id forgotten as soon as it
# is applied, so whether its twin on the other topic counts again would depend on which of
# the two came first. Lead events keep to timestamps within the horizon of one another.
LEAD_TIMES = tuple(t for t in TIMES if not t.startswith("0001-"))

json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(EDGE_STRINGS)
)
json_value = st.recursive(
    json_scalar,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def near_valid(draw: st.DrawFn, names: TopicNames) -> Message:
    """A real event with a few fields dropped, retyped or replaced, perhaps on the wrong topic,
    perhaps truncated or with garbage around it, and a key that may not match."""
    type_ = draw(st.sampled_from(sorted(TYPES)))
    ident = draw(st.sampled_from(["id-1", "id-2", "id-3"]) | st.sampled_from(EDGE_STRINGS))
    body: dict[str, Any] = {
        "event_id": draw(st.sampled_from(["e1", "e2", "e3", "e4"]) | st.text(max_size=12)),
        "type": type_,
        "occurred_at": draw(st.sampled_from(TIMES if type_ == "visit" else LEAD_TIMES)),
        "source": draw(st.sampled_from(["direct", "organic"]) | st.sampled_from(EDGE_STRINGS)),
    }
    body["visitor_id" if type_ == "visit" else "lead_id"] = ident
    if type_ == "stage_changed":
        body["to_stage"] = draw(st.sampled_from(STAGES))
        del body["source"]
    mutate = draw(st.sampled_from([False, False, True]))
    for field in draw(st.lists(st.sampled_from(sorted(body)), max_size=2)) if mutate else []:
        if draw(st.booleans()):
            body.pop(field, None)
        else:
            body[field] = draw(json_value)
    body.update(draw(st.dictionaries(st.sampled_from(["team", "page", "x", "owner"]), json_value)))
    text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    raw = text.encode("utf-8", "surrogatepass")
    cut = draw(st.sampled_from(["whole", "whole", "whole", "truncated", "garbage", "bom"]))
    if cut == "truncated":
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    elif cut == "garbage":
        raw += draw(st.binary(min_size=1, max_size=8))
    elif cut == "bom":
        raw = b"\xef\xbb\xbf" + raw
    kind = TYPES[type_]
    if draw(st.sampled_from(["right"] * 9 + ["any"])) == "any":
        kind = draw(st.sampled_from(sorted(TYPES.values())))
    key = ident.encode("utf-8", "surrogatepass")
    if draw(st.sampled_from(["id"] * 5 + ["any"])) == "any":
        key = draw(_keys)
    return (topic_of(names, kind), key, raw, None)


_keys = st.none() | st.binary(max_size=16)


def topic_of(names: TopicNames, kind: str) -> str:
    """The topic name of an input kind."""
    return {"visits": names.visits, "leads": names.leads, "transitions": names.transitions}[kind]


@st.composite
def arbitrary(draw: st.DrawFn, names: TopicNames) -> Message:
    """Any bytes (or none) as key and value."""
    topic = topic_of(names, draw(st.sampled_from(sorted(TYPES.values()))))
    key, value = draw(_keys), draw(st.none() | st.binary(max_size=300))
    # Kafka allows a record with neither, but the client refuses to send one.
    return (topic, b"" if key is None and value is None else key, value, None)


@st.composite
def oversized(draw: st.DrawFn, names: TopicNames) -> Message:
    """A valid-looking visit with one huge field (known or unknown) or deeply nested JSON."""
    size = draw(st.integers(10_000, 400_000))
    shape = draw(st.sampled_from(["page", "extra", "nested_list", "nested_object"]))
    vid = f"huge-{draw(st.integers(0, 10**9))}"
    head = (
        f'{{"event_id":"{vid}","type":"visit","occurred_at":"{at(START)}",'
        f'"visitor_id":"{vid}","source":"direct",'
    )
    if shape == "page":
        tail = f'"page":"/{"p" * size}"}}'
    elif shape == "extra":
        tail = f'"notes":"{"n" * size}"}}'
    elif shape == "nested_list":
        depth = size // 4
        tail = '"x":' + "[" * depth + "]" * depth + "}"
    else:
        depth = size // 8
        tail = '"x":' + '{"a":' * depth + "1" + "}" * depth + "}"
    return (names.visits, vid.encode(), (head + tail).encode(), None)


def corpus(strategy: st.SearchStrategy[Message], count: int) -> list[Message]:
    """``count`` examples of ``strategy``, the same on every run of the same tests (Hypothesis
    also draws constants from the modules loaded, so another selection of tests draws others)."""
    out: list[Message] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(message: Message) -> None:
        out.append(message)

    collect()
    return out
