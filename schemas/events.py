"""The three input events of the funnel, as pydantic models (events.md, v1).

The models are the executable form of the public event contract: field names, types and
limits follow the spec exactly, and the JSON Schemas in ``schemas/json/`` are generated
from them. Validation is strict (a number is not a string, ``1.0`` is not an integer),
extra fields are dropped unread, and a timestamp must be RFC 3339 with an offset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, GetCoreSchemaHandler, Strict
from pydantic_core import PydanticCustomError, core_schema

# RFC 3339 date-time. The offset is optional here only so that a naive timestamp fails with
# pydantic's own "timezone_aware" error; ``AwareDatetime`` then insists on it.
_RFC3339_PATTERN: Final = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
_RFC3339: Final = re.compile(_RFC3339_PATTERN)


def _require_rfc3339(value: object) -> object:
    """Let through datetimes and RFC 3339 strings only; pydantic parses the strings next."""
    if isinstance(value, datetime) or (
        isinstance(value, str) and _RFC3339.fullmatch(value) is not None
    ):
        return value
    raise PydanticCustomError("rfc3339_timestamp", "Input should be an RFC 3339 timestamp")


class _Rfc3339:
    """Annotation: a timestamp must be an RFC 3339 string (or, from Python, a datetime).

    From JSON (every message) the check runs inside pydantic-core, where it costs far less
    than a Python callback (docs/performance.md, 20.): a strict string matching the anchored
    pattern, any failure reported as ``rfc3339_timestamp``. From Python, ``_require_rfc3339``
    does the same and also lets datetimes through. Either way the string is then parsed by
    the lax datetime validator: strict mode refuses a str from Python, and lax mode alone
    would read numbers and digit strings as Unix times, which the check has refused already.
    tests/schemas/test_events.py holds both paths to the same answers.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        parse = handler(source)  # AwareDatetime, lax
        return core_schema.json_or_python_schema(
            json_schema=core_schema.chain_schema(
                [
                    core_schema.custom_error_schema(
                        core_schema.str_schema(strict=True, pattern=f"^(?:{_RFC3339_PATTERN})$"),
                        custom_error_type="rfc3339_timestamp",
                        custom_error_message="Input should be an RFC 3339 timestamp",
                    ),
                    parse,
                ]
            ),
            python_schema=core_schema.no_info_before_validator_function(_require_rfc3339, parse),
            # The JSON Schema of the contract: what the datetime alone would say.
            metadata={"pydantic_js_functions": [lambda _schema, js: js(parse)]},
        )


Timestamp: TypeAlias = Annotated[
    AwareDatetime,
    Strict(False),
    _Rfc3339(),
    Field(description="Event time, RFC 3339 with offset, e.g. 2026-11-27T15:04:05.123Z."),
]
Identifier: TypeAlias = Annotated[str, Field(min_length=1, max_length=128)]
Source: TypeAlias = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="Acquisition channel, e.g. organic, paid_search, social, email.",
    ),
]
Campaign: TypeAlias = Annotated[str | None, Field(max_length=128)]
Owner: TypeAlias = Annotated[
    str | None,
    Field(max_length=128, description="Sales rep id (pseudonymous); never a metric label."),
]


class _EventBase(BaseModel):
    """Fields and settings shared by every event."""

    model_config = ConfigDict(
        strict=True,
        frozen=True,
        extra="ignore",
        # Keep payload values out of str(ValidationError), in case one is ever logged.
        hide_input_in_errors=True,
        # Only the field names repeat from one message to the next; caching every string
        # value (ids, timestamps) as well cost 8 % of a visit's validation.
        cache_strings="keys",
    )

    event_id: Identifier = Field(
        description="Unique per event; a producer retries with the same id.",
    )
    type: str
    occurred_at: Timestamp
    schema_version: int = Field(default=1, description="Contract version.")


class Visit(_EventBase):
    """A page view by an anonymous visitor; on the visits topic, keyed by visitor_id."""

    type: Literal["visit"]
    visitor_id: Identifier = Field(description="Anonymous visitor id; equals the message key.")
    source: Source
    campaign: Campaign = None
    page: Annotated[str | None, Field(max_length=2048, description="URL path.")] = None

    @property
    def message_key(self) -> str:
        """The Kafka key this event must carry: its ``visitor_id``."""
        return self.visitor_id


class LeadCreated(_EventBase):
    """A visitor became a known lead, in stage lead; on the leads topic, keyed by lead_id."""

    type: Literal["lead_created"]
    lead_id: Identifier = Field(description="Lead id; equals the message key.")
    visitor_id: Annotated[
        str | None,
        Field(min_length=1, max_length=128, description="Links the lead to earlier visits."),
    ] = None
    source: Source
    campaign: Campaign = None
    team: str = Field(default="default", description="Sales team that owns the lead.")
    owner: Owner = None

    @property
    def message_key(self) -> str:
        """The Kafka key this event must carry: its ``lead_id``."""
        return self.lead_id


class StageChanged(_EventBase):
    """A lead moved to another stage; on the stage-transitions topic, keyed by lead_id."""

    type: Literal["stage_changed"]
    lead_id: Identifier = Field(description="Lead id; equals the message key.")
    to_stage: str = Field(description="One of the configured stages.")
    from_stage: str | None = Field(default=None, description="Informational only.")
    team: str | None = Field(
        default=None, description="Overrides the lead's team from this event on."
    )
    owner: Owner = None

    @property
    def message_key(self) -> str:
        """The Kafka key this event must carry: its ``lead_id``."""
        return self.lead_id


Event: TypeAlias = Visit | LeadCreated | StageChanged
"""Any valid input event."""

EVENT_MODELS: Final[Mapping[str, type[Event]]] = MappingProxyType(
    {"visit": Visit, "lead_created": LeadCreated, "stage_changed": StageChanged}
)
"""The model for each ``type`` value, in the spec's order."""
