"""Segment-spec calls → contract events: the mapping rules of docs/ingest.md, without I/O."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import LeadCreated, Rejection, StageChanged, Visit, classify
from stream.config.ingest import SegmentMapping
from stream.config.loading import load_settings
from stream.ingest.mapping import OutMessage, Refusal, SegmentMapper
from tests.stream.ingest.support import STAGES

RECEIVED = dt.datetime(2026, 11, 27, 15, 0, 0, tzinfo=dt.UTC)
NOW = RECEIVED.timestamp()
ALL_STAGES = load_settings(environ={}).funnel.all_stages


def mapper(**mapping: Any) -> SegmentMapper:
    return SegmentMapper(SegmentMapping(**mapping), ALL_STAGES)


def mapped(call: dict[str, Any], **kwargs: Any) -> OutMessage:
    result = mapper(**kwargs.pop("mapping", {})).map(call, received_at=RECEIVED, now=NOW, **kwargs)
    assert isinstance(result, OutMessage), result
    return result


def event(message: OutMessage) -> Visit | LeadCreated | StageChanged:
    """The contract event, as a worker would read it (keyed by its id, on its topic)."""
    verdict = classify(message.kind, message.key, message.value, stages=STAGES, now=NOW)
    assert not isinstance(verdict, Rejection), verdict
    return verdict


def page(**fields: Any) -> dict[str, Any]:
    return {"type": "page", "messageId": "m-1", "anonymousId": "anon-1", **fields}


def test_a_page_is_a_visit_keyed_by_the_anonymous_id() -> None:
    message = mapped(page(properties={"path": "/pricing"}))
    visit = event(message)
    assert isinstance(visit, Visit) and message.kind == "visits" and message.key == b"anon-1"
    assert (visit.event_id, visit.visitor_id, visit.page) == ("m-1", "anon-1", "/pricing")
    assert visit.occurred_at == RECEIVED  # no timestamp: when the gateway received it
    assert visit.source == "direct"  # the documented default


def test_the_source_comes_from_the_utm_medium_then_the_referrer() -> None:
    def source_of(context: dict[str, Any], **mapping: Any) -> tuple[str, str | None]:
        visit = event(mapped(page(context=context), mapping=mapping))
        assert isinstance(visit, Visit)
        return visit.source, visit.campaign

    assert source_of({"campaign": {"medium": "CPC", "name": "winter"}}) == (
        "paid_search",
        "winter",
    )
    assert source_of({"campaign": {"medium": "podcast"}}) == ("podcast", None)
    assert source_of({"campaign": {"medium": "cpc"}}, medium_sources={"cpc": "ads"}) == (
        "ads",
        None,
    )
    assert source_of({"page": {"search": "?utm_medium=email&utm_campaign=nl-12"}}) == (
        "email",
        "nl-12",
    )
    assert source_of({"page": {"referrer": "https://www.google.de/search?q=x"}})[0] == "organic"
    assert source_of({"page": {"referrer": "https://t.co/abc"}})[0] == "social"
    assert source_of({"page": {"referrer": "https://blog.example.org/post"}})[0] == "referral"
    own = {"referrer": "https://shop.example.com/a", "url": "https://shop.example.com/b"}
    assert source_of({"page": own})[0] == "direct"  # moving inside the site
    assert source_of({}, default_source="unknown")[0] == "unknown"


def test_clock_skew_is_corrected_as_segment_documents() -> None:
    # The client's clock is 10 minutes slow: it stamped the call 09:59:00 and sent it at
    # 09:50:02 by its clock, which the gateway received at 15:00:00 UTC.
    call = page(timestamp="2026-11-27T09:49:00.000Z", sentAt="2026-11-27T09:50:00.000Z")
    visit = event(mapped(call))
    assert visit.occurred_at == RECEIVED - dt.timedelta(minutes=1)
    # The batch's sentAt counts when the call has none.
    batch_sent = "2026-11-27T09:50:00Z"
    visit = event(mapped(page(timestamp="2026-11-27T09:49:30+00:00"), sent_at=batch_sent))
    assert visit.occurred_at == RECEIVED - dt.timedelta(seconds=30)
    # Without sentAt the timestamp is taken as sent; a naive one is read as UTC.
    visit = event(mapped(page(timestamp="2026-11-27T14:00:00")))
    assert visit.occurred_at == RECEIVED - dt.timedelta(hours=1)


def test_a_configured_track_event_creates_a_lead() -> None:
    call = {
        "type": "track",
        "messageId": "m-2",
        "event": "Signed Up",
        "userId": "user-7",
        "anonymousId": "anon-7",
        "properties": {"team": "sales-emea", "owner_id": "rep-3", "email": "a@b.example"},
        "context": {"campaign": {"medium": "social", "name": "launch"}},
    }
    message = mapped(call)
    lead = event(message)
    assert isinstance(lead, LeadCreated) and message.kind == "leads" and message.key == b"user-7"
    assert (lead.lead_id, lead.visitor_id, lead.team) == ("user-7", "anon-7", "sales-emea")
    assert (lead.source, lead.campaign) == ("social", "launch")
    assert json.loads(message.value)["owner"] == "rep-3"
    assert b"a@b.example" not in message.value


def test_a_track_event_can_move_a_lead_to_a_stage() -> None:
    call = {"type": "track", "messageId": "m-3", "event": "Demo Booked", "userId": 42}
    change = event(mapped(call, mapping={"track_events": {"Demo Booked": "mql"}}))
    assert isinstance(change, StageChanged)
    assert (change.lead_id, change.to_stage, change.team) == ("42", "mql", None)


def test_identify_traits_move_a_lead_and_personal_data_stays_out() -> None:
    traits = {
        "lifecycle_stage": "SQL",
        "email": "jane@example.com",
        "name": "Jane Doe",
        "phone": "+34 600 000 000",
        "team": "sales-amer",
    }
    call = {"type": "identify", "messageId": "m-4", "userId": "user-9", "traits": traits}
    message = mapped(call)
    change = event(message)
    assert isinstance(change, StageChanged)
    assert (change.to_stage, change.team) == ("sql", "sales-amer")
    for value in ("jane@example.com", "Jane Doe", "+34 600 000 000"):
        assert value.encode() not in message.value
    values = {"marketingqualifiedlead": "mql", "new": "lead_created"}
    traits["lifecycle_stage"] = "new"
    lead = event(mapped(call, mapping={"stage_values": values}))
    assert isinstance(lead, LeadCreated) and lead.source == "direct"


def test_calls_with_nothing_for_the_funnel_map_to_nothing() -> None:
    m = mapper()
    for call in (
        {"type": "track", "messageId": "m", "event": "Viewed Pricing", "userId": "u"},
        {"type": "identify", "messageId": "m", "userId": "u", "traits": {"plan": "pro"}},
        {"type": "screen", "messageId": "m", "anonymousId": "a"},
        {"type": "group", "messageId": "m", "userId": "u", "groupId": "g"},
        {"type": "alias", "messageId": "m", "userId": "u", "previousId": "p"},
    ):
        assert m.map(call, received_at=RECEIVED, now=NOW) is None, call


def test_a_call_that_cannot_be_mapped_names_its_field() -> None:
    m = mapper()

    def field(call: object, **kwargs: Any) -> str:
        result = m.map(call, received_at=RECEIVED, now=NOW, **kwargs)
        assert isinstance(result, Refusal), result
        assert "@" not in str(result)  # never a value from the call
        return result.field

    track = {"type": "track", "messageId": "m", "event": "Signed Up", "userId": "u"}
    assert field([1, 2]) == "call"
    assert field({**track, "type": "bogus"}) == "type"
    assert field(track, call_type="page") == "type"
    assert field({**track, "messageId": ""}) == "messageId"
    assert field({**track, "messageId": "x" * 129}) == "messageId"
    assert field({k: v for k, v in track.items() if k != "userId"}) == "userId"
    assert field({**track, "event": ["Signed Up"]}) == "event"
    assert field({**track, "timestamp": "yesterday"}) == "timestamp"
    assert field({**track, "timestamp": "2026-11-27T10:00:00Z", "sentAt": 5}) == "sentAt"
    assert field({**track, "timestamp": "2027-11-27T10:00:00Z"}) == "timestamp"  # future
    assert field(page(anonymousId=None)) == "anonymousId"
    identify = {"type": "identify", "messageId": "m", "userId": "u@example.com"}
    assert field({**identify, "traits": {"lifecycle_stage": "champion"}}) == (
        "traits.lifecycle_stage"
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
call_fields = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["page", "track", "identify", "screen", "x"]) | json_values,
        "messageId": st.text(max_size=130) | json_values,
        "anonymousId": st.text(max_size=130) | json_values,
        "userId": st.text(max_size=130) | st.integers() | json_values,
        "event": st.sampled_from(["Signed Up", "Other"]) | json_values,
        "timestamp": st.datetimes().map(lambda d: d.isoformat()) | json_values,
        "sentAt": st.datetimes().map(lambda d: d.isoformat()) | json_values,
        "traits": st.fixed_dictionaries({"lifecycle_stage": json_values}) | json_values,
        "properties": json_values,
        "context": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(call=call_fields | json_values, sent_at=json_values, context=json_values)
def test_no_call_makes_the_mapper_raise_and_every_message_is_valid(
    call: Any, sent_at: Any, context: Any
) -> None:
    result = mapper().map(
        call,
        received_at=RECEIVED,
        sent_at=sent_at,
        context=context if isinstance(context, dict) else None,
        now=NOW,
    )
    if isinstance(result, OutMessage):
        event(result)
        assert orjson.loads(result.value)["event_id"] == call["messageId"]
