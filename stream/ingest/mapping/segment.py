"""Segment-spec calls (Segment, RudderStack, Jitsu) → contract events (docs/ingest.md).

``page`` → ``visit``; a configured ``track`` event → ``lead_created`` or ``stage_changed``;
``identify`` with the configured stage trait → ``stage_changed`` (or ``lead_created``). Every
other call (``screen``, ``group``, ``alias``, other track events, identifies without the trait)
maps to nothing. ``event_id`` is the call's ``messageId``, so a client's retry is a duplicate.

Event time follows Segment's rule: the client's ``timestamp`` corrected for the client's clock
skew, ``timestamp + (receivedAt - sentAt)``; without ``sentAt`` the ``timestamp`` as sent;
without ``timestamp`` the moment the gateway received the call.

Only identifiers, the stage, the source and campaign, the page path, and the configured team
and owner are read; traits and properties are otherwise never copied, so e-mail addresses,
names or phone numbers in them go nowhere.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from stream.config.ingest import LEAD_CREATED, SegmentMapping
from stream.ingest.mapping.common import (
    MAX_CAMPAIGN,
    MAX_PAGE,
    MAX_SOURCE,
    UTC,
    OutMessage,
    Refusal,
    Result,
    checked,
    identifier,
    label_text,
    rfc3339,
)

SEGMENT_CALLS: Final = frozenset({"track", "identify", "page", "screen", "group", "alias"})
"""The call types of the Segment spec; the gateway maps three and takes the others as no-ops."""

_UTM: Final = {"campaign": "name"}
# Referrer hosts that say which channel a visit came from (a host ends with one of these).
_SEARCH_HOSTS: Final = ("google.", "bing.com", "duckduckgo.com", "yahoo.", "baidu.com", "yandex.")
_SOCIAL_HOSTS: Final = (
    "facebook.com",
    "instagram.com",
    "linkedin.com",
    "lnkd.in",
    "twitter.com",
    "t.co",
    "x.com",
    "reddit.com",
    "youtube.com",
    "tiktok.com",
    "pinterest.com",
)


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _host(url: object) -> str:
    if not isinstance(url, str) or not url:
        return ""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _parse_time(value: object) -> dt.datetime | None:
    """An ISO 8601 timestamp (naive ones read as UTC), or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class SegmentMapper:
    """Maps one Segment-spec call at a time, with the ``[ingest.segment]`` configuration."""

    def __init__(self, mapping: SegmentMapping, stages: tuple[str, ...]) -> None:
        self.mapping = mapping
        self.stages = frozenset(stages)
        self._stage_values = {key.lower(): value for key, value in mapping.stage_values.items()}
        self._media = {key.lower(): value for key, value in mapping.medium_sources.items()}

    def map(
        self,
        call: object,
        *,
        received_at: dt.datetime,
        sent_at: object = None,
        context: Mapping[str, Any] | None = None,
        call_type: str | None = None,
        now: float | None = None,
    ) -> Result:
        """Map one call. ``sent_at`` and ``context`` are a batch's own (the call's win);
        ``call_type`` is the endpoint's (``/v1/track``), which a call's ``type`` must match."""
        if not isinstance(call, dict):
            return Refusal("call", "must be a JSON object")
        kind = call.get("type", call_type)
        if call_type is not None and kind != call_type:
            return Refusal("type", f"must be {call_type} on /v1/{call_type}")
        if not isinstance(kind, str) or kind not in SEGMENT_CALLS:
            return Refusal("type", "must be one of " + ", ".join(sorted(SEGMENT_CALLS)))
        if kind not in ("page", "track", "identify"):
            return None
        event_id = identifier(call.get("messageId"))
        if event_id is None:
            return Refusal("messageId", "required: a string of 1–128 characters")
        occurred = self._occurred_at(call, received_at, sent_at)
        if isinstance(occurred, Refusal):
            return occurred
        ctx = _dict(call.get("context")) or _dict(context)
        stamp = now if now is not None else time.time()
        if kind == "page":
            return self._visit(call, ctx, event_id, occurred, stamp)
        if kind == "track":
            name = call.get("event")
            if not isinstance(name, str):
                return Refusal("event", "required for a track call: a string")
            target = self.mapping.track_events.get(name)
            if target is None:
                return None
            details = _dict(call.get("properties"))
        else:
            details = _dict(call.get("traits")) or _dict(ctx.get("traits"))
            value = details.get(self.mapping.stage_trait)
            if value is None or value == "":
                return None
            found = self._stage_of(value)
            if found is None:
                return Refusal(
                    f"traits.{self.mapping.stage_trait}",
                    "not a configured stage nor a key of ingest.segment.stage_values",
                )
            target = found
        return self._lead_event(call, ctx, details, target, event_id, occurred, stamp)

    def _occurred_at(
        self, call: Mapping[str, Any], received_at: dt.datetime, batch_sent_at: object
    ) -> str | Refusal:
        raw = call.get("timestamp")
        if raw is None:
            return rfc3339(received_at)
        timestamp = _parse_time(raw)
        if timestamp is None:
            return Refusal("timestamp", "must be an ISO 8601 timestamp")
        raw_sent = call.get("sentAt", batch_sent_at)
        if raw_sent is None:
            return rfc3339(timestamp)
        sent_at = _parse_time(raw_sent)
        if sent_at is None:
            return Refusal("sentAt", "must be an ISO 8601 timestamp")
        try:
            return rfc3339(timestamp + (received_at - sent_at))
        except OverflowError:
            return Refusal("timestamp", "is out of range")

    def _stage_of(self, value: object) -> str | None:
        if not isinstance(value, str):
            return None
        lowered = value.strip().lower()
        if lowered in self._stage_values:
            return self._stage_values[lowered]
        return lowered if lowered in self.stages else None

    def _source(self, call: Mapping[str, Any], ctx: Mapping[str, Any]) -> tuple[str, str | None]:
        """The acquisition channel and campaign: UTM medium, else the referrer, else default."""
        campaign = _dict(ctx.get("campaign"))
        page = _dict(ctx.get("page"))
        properties = _dict(call.get("properties"))
        if not campaign:
            search = page.get("search") or properties.get("search")
            if isinstance(search, str) and "utm_" in search:
                query = parse_qs(search.lstrip("?"))
                # As analytics.js reads them: utm_campaign is the campaign's name.
                campaign = {
                    _UTM.get(key[4:], key[4:]): values[0]
                    for key, values in query.items()
                    if key[:4] == "utm_"
                }
        name = campaign.get("name")
        campaign_name = name.strip()[:MAX_CAMPAIGN] if isinstance(name, str) else None
        medium = campaign.get("medium")
        if isinstance(medium, str) and medium.strip():
            lowered = medium.strip().lower()
            return self._media.get(lowered, lowered[:MAX_SOURCE]), campaign_name or None
        referrer = _host(page.get("referrer") or properties.get("referrer"))
        if referrer and referrer != _host(page.get("url") or properties.get("url")):
            if any(referrer.startswith(h) or f".{h}" in referrer for h in _SEARCH_HOSTS):
                return "organic", campaign_name or None
            if any(referrer == h or referrer.endswith(f".{h}") for h in _SOCIAL_HOSTS):
                return "social", campaign_name or None
            return "referral", campaign_name or None
        return self.mapping.default_source, campaign_name or None

    def _visit(
        self,
        call: Mapping[str, Any],
        ctx: Mapping[str, Any],
        event_id: str,
        occurred: str,
        now: float,
    ) -> OutMessage | Refusal:
        visitor_id = identifier(call.get("anonymousId"))
        if visitor_id is None:
            return Refusal("anonymousId", "required for a page call: a string of 1–128 characters")
        source, campaign = self._source(call, ctx)
        event: dict[str, Any] = {
            "event_id": event_id,
            "type": "visit",
            "occurred_at": occurred,
            "visitor_id": visitor_id,
            "source": source,
        }
        if campaign:
            event["campaign"] = campaign
        path = _dict(call.get("properties")).get("path") or _dict(ctx.get("page")).get("path")
        if isinstance(path, str) and 0 < len(path) <= MAX_PAGE:
            event["page"] = path
        return checked("visits", visitor_id, event, self.stages, now)

    def _lead_event(
        self,
        call: Mapping[str, Any],
        ctx: Mapping[str, Any],
        details: Mapping[str, Any],
        target: str,
        event_id: str,
        occurred: str,
        now: float,
    ) -> OutMessage | Refusal:
        lead_id = identifier(call.get("userId"))
        if lead_id is None:
            return Refusal("userId", "required for a lead: a string of 1–128 characters")
        traits = _dict(ctx.get("traits"))
        team = label_text(details.get(self.mapping.team_property)) or label_text(
            traits.get(self.mapping.team_property)
        )
        owner = label_text(details.get(self.mapping.owner_property)) or label_text(
            traits.get(self.mapping.owner_property)
        )
        event: dict[str, Any] = {"event_id": event_id, "occurred_at": occurred, "lead_id": lead_id}
        if target == LEAD_CREATED:
            source, campaign = self._source(call, ctx)
            event.update(type=LEAD_CREATED, source=source)
            if (visitor_id := identifier(call.get("anonymousId"))) is not None:
                event["visitor_id"] = visitor_id
            if campaign:
                event["campaign"] = campaign
            kind = "leads"
        else:
            event.update(type="stage_changed", to_stage=target)
            kind = "transitions"
        if team:
            event["team"] = team
        if owner:
            event["owner"] = owner
        return checked(kind, lead_id, event, self.stages, now)  # type: ignore[arg-type]
