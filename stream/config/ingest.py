"""``[ingest]``: the HTTP gateway's section (``funnel ingest``, docs/ingest.md).

Secrets (the Segment write keys, the HubSpot app's secret) come only from the environment:
``resolve_ingest`` lays the ``FUNNEL_INGEST_*`` variables over the file's table and refuses a
secret written in the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr

from stream.config.fields import FROZEN, Loc, PositiveSeconds, distinct, whole_number
from stream.core.durations import parse_duration
from stream.errors import ConfigError

# Where a Segment track event, identify trait value or HubSpot stage may lead: a new lead, or
# a stage change to one of the configured stages (checked against them in ``Settings``).
LEAD_CREATED = "lead_created"
# Segment's campaign medium (utm_medium) → the funnel's source; unlisted media are kept as written.
_MEDIUM_SOURCES = {
    "cpc": "paid_search",
    "ppc": "paid_search",
    "paidsearch": "paid_search",
    "paid_search": "paid_search",
    "organic": "organic",
    "email": "email",
    "newsletter": "email",
    "social": "social",
    "paid_social": "social",
    "referral": "referral",
}
_HUBSPOT_STAGES = {
    "lead": "lead",
    "marketingqualifiedlead": "mql",
    "salesqualifiedlead": "sql",
    "opportunity": "opportunity",
    "customer": "customer",
}
SourceName = Annotated[str, Field(min_length=1, max_length=64)]


class SegmentMapping(BaseModel):
    """``[ingest.segment]``: how Segment-spec calls become contract events (docs/ingest.md)."""

    model_config = FROZEN

    track_events: dict[str, str] = Field(default_factory=lambda: {"Signed Up": LEAD_CREATED})
    stage_trait: str = "lifecycle_stage"
    stage_values: dict[str, str] = Field(default_factory=dict)
    team_property: str = "team"
    owner_property: str = "owner_id"
    default_source: SourceName = "direct"
    medium_sources: dict[str, SourceName] = Field(default_factory=lambda: dict(_MEDIUM_SOURCES))


class HubSpotMapping(BaseModel):
    """``[ingest.hubspot]``: how HubSpot contact webhooks become contract events."""

    model_config = FROZEN

    stages: dict[str, str] = Field(default_factory=lambda: dict(_HUBSPOT_STAGES))
    ignored_stages: Annotated[tuple[str, ...], distinct(None)] = (
        "subscriber",
        "evangelist",
        "other",
    )
    source: SourceName = "crm"
    team: str = "default"
    public_url: str | None = None
    app_secret: SecretStr | None = None


class IngestSettings(BaseModel):
    """``[ingest]``: the HTTP gateway (``funnel ingest``); secrets come from the environment."""

    model_config = FROZEN

    port: Annotated[int, whole_number(1, 65535, text=True)] = 8088
    bind: str = "127.0.0.1"
    produce_timeout: PositiveSeconds = parse_duration("4s")
    retry_after: PositiveSeconds = parse_duration("2s")
    write_keys: tuple[SecretStr, ...] = ()
    segment: SegmentMapping = SegmentMapping()
    hubspot: HubSpotMapping = HubSpotMapping()


_INGEST_ENV = {"port": "FUNNEL_INGEST_PORT", "bind": "FUNNEL_INGEST_BIND"}
_INGEST_SECRETS = {
    ("write_keys",): "FUNNEL_INGEST_WRITE_KEYS",
    ("hubspot", "app_secret"): "FUNNEL_HUBSPOT_APP_SECRET",
}


def resolve_ingest(
    ingest: dict[str, Any], env: Mapping[str, str], source: str, from_env: dict[Loc, str]
) -> None:
    """Lay ``FUNNEL_INGEST_*`` over ``ingest`` and read its secrets, which only the environment
    may hold: the Segment write keys (comma-separated) and the HubSpot app's secret."""
    for key, variable in _INGEST_ENV.items():
        if variable in env:
            ingest[key] = env[variable]
            from_env[("ingest", key)] = variable
    hubspot = ingest.get("hubspot")
    for path, variable in _INGEST_SECRETS.items():
        table = ingest if len(path) == 1 else hubspot
        if isinstance(table, dict) and path[-1] in table:
            raise ConfigError(
                f"{source}: ingest.{'.'.join(path)}: secrets may not sit in the file; "
                f"set {variable} instead"
            )
    if keys := env.get("FUNNEL_INGEST_WRITE_KEYS"):
        ingest["write_keys"] = tuple(key.strip() for key in keys.split(",") if key.strip())
    if secret := env.get("FUNNEL_HUBSPOT_APP_SECRET"):
        if not isinstance(hubspot, dict):
            hubspot = ingest["hubspot"] = {}
        hubspot["app_secret"] = secret
