"""Settings: one frozen object, as the TOML file and the ``FUNNEL_*`` environment give it.

The sections (``funnel``, ``labels``, ``sla``, ``north_star``, ``report``, ``kafka``,
``ingest``) mirror the file and refuse unknown keys; the runtime values of interface.md are
top-level fields (the gateway's are in ``ingest``, with ``FUNNEL_INGEST_*`` variables);
durations are float seconds. ``stream.config.loading.load_settings`` builds it from the file
and the environment.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SecretStr,
    model_validator,
)

from stream.config.fields import (
    FROZEN,
    AllowList,
    Amount,
    KafkaName,
    PositiveSeconds,
    Rate,
    Refused,
    Seconds,
    Stages,
    TimeZoneName,
    Window,
    brokers,
    distinct,
    must,
    whole_number,
)
from stream.config.ingest import LEAD_CREATED, IngestSettings
from stream.config.topics import TopicNames
from stream.core.calendar import DAY_NAMES, Weekday
from stream.core.durations import parse_duration
from stream.core.rules import DEFAULT_EXTRA_STAGES, DEFAULT_FOLLOWUP_STAGES, DEFAULT_STAGES


class FunnelSettings(BaseModel):
    """``[funnel]``: the stages, the business time zone and the windows."""

    model_config = FROZEN

    stages: Annotated[Stages, distinct()] = DEFAULT_STAGES
    extra_stages: Stages = DEFAULT_EXTRA_STAGES
    time_zone: TimeZoneName = "UTC"
    windows: Annotated[tuple[Window, ...], distinct()] = ("1h", "1d")
    window_retention: PositiveSeconds = parse_duration("35d")
    dedupe_horizon: PositiveSeconds = parse_duration("7d")
    orphan_hold: Seconds = parse_duration("1h")
    definitions: dict[str, str] = Field(default_factory=dict)
    # stage -> how long a lead may stay in it before it is "stuck" (none by default)
    stuck_after: dict[str, PositiveSeconds] = Field(default_factory=dict)

    @property
    def all_stages(self) -> tuple[str, ...]:
        """Every configured stage: the funnel order, then the extra stages."""
        return self.stages + self.extra_stages

    @property
    def window_seconds(self) -> tuple[float, ...]:
        """The ``windows``, in seconds, in the same order."""
        return tuple(parse_duration(window) for window in self.windows)


class LabelSettings(BaseModel):
    """``[labels]``: allow-lists (None: any value) and the cap on distinct values per label."""

    model_config = FROZEN

    max_values: Annotated[int, whole_number(1)] = 50
    source: AllowList | None = None
    campaign: AllowList | None = None
    team: AllowList | None = None


class BusinessHours(BaseModel):
    """``[sla.business_hours]``: the calendar the SLA clock runs on, when one is set."""

    model_config = FROZEN

    time_zone: TimeZoneName
    days: Annotated[tuple[Weekday, ...], distinct()] = DAY_NAMES[:5]
    start: datetime.time
    end: datetime.time
    holidays: tuple[datetime.date, ...] = ()
    holidays_country: str | None = None
    holidays_subdivision: str | None = None

    @model_validator(mode="after")
    def _check(self) -> BusinessHours:
        if self.end <= self.start:
            raise Refused("end", f"must be later than start ({self.start.isoformat()})")
        if self.holidays_subdivision is not None and self.holidays_country is None:
            raise Refused("holidays_subdivision", "needs holidays_country")
        if self.holidays_country is not None:
            self._public_holidays(())  # refuses an unknown country or subdivision now
        return self

    def closed_dates(self, years: Iterable[int]) -> frozenset[datetime.date]:
        """The listed ``holidays`` and, with ``holidays_country``, its public holidays in ``years``.

        Public holidays come from the ``holidays`` package, for the country and, when set,
        its subdivision (a state, province or region); they are resolved once, at start-up.
        """
        return frozenset(self.holidays) | self._public_holidays(years)

    def _public_holidays(self, years: Iterable[int]) -> frozenset[datetime.date]:
        if self.holidays_country is None:
            return frozenset()
        import holidays  # only a calendar that names a country pays for the import

        try:
            found = holidays.country_holidays(
                self.holidays_country, subdiv=self.holidays_subdivision, years=list(years)
            )
        except NotImplementedError as exc:  # the package's word for an unknown code
            key = "holidays_subdivision" if "subdivision" in str(exc) else "holidays_country"
            raise Refused(key, f"unknown to the holidays package: {exc}") from exc
        return frozenset(found)


class Marketing(BaseModel):
    """``[sla.marketing]``: marketing's monthly commitment to sales (0 = none)."""

    model_config = FROZEN

    mql_per_month: Annotated[int, whole_number(0)] = 0
    sql_per_month: Annotated[int, whole_number(0)] = 0


class SlaSettings(BaseModel):
    """``[sla]``: the follow-up deadline, the stage that starts its clock and those that stop it."""

    model_config = FROZEN

    followup_within: PositiveSeconds = parse_duration("24h")
    clock_starts_at: str = "lead"
    followup_stages: Annotated[tuple[str, ...], distinct()] = DEFAULT_FOLLOWUP_STAGES
    breach_grace: Seconds = 0.0
    # Labels of funnel_leads_at_risk as written; a lead is at risk once its time left on the
    # SLA's clock reaches each. Distinct durations (``"1h"`` and ``"60m"`` are one).
    warn_before: Annotated[
        tuple[Window, ...],
        distinct(None),
        must(
            lambda v: len({parse_duration(d) for d in v}) == len(v),
            "lists one duration twice",
        ),
    ] = ("4h", "1h")
    business_hours: BusinessHours | None = None
    marketing: Marketing = Marketing()


class ReportSettings(BaseModel):
    """``[report]``: what ``funnel report`` reads when it renders, and only then."""

    model_config = FROZEN

    # A local CSV of (owner id, display name) rows, for "Follow-up by owner".
    owner_names: Path | None = None
    # Cohorts: the share of a cohort's leads that reached each stage within this long.
    conversion_window: PositiveSeconds = parse_duration("90d")
    # Processes reading the visits, each a range of partitions (None: one per CPU).
    processes: Annotated[int, whole_number(1)] | None = None


class NorthStarSettings(BaseModel):
    """``[north_star]``: the revenue goal and the assumptions of the reverse funnel."""

    model_config = FROZEN

    revenue_goal: Amount = 0.0
    period: Literal["month", "quarter", "year"] = "year"
    average_deal_size: Amount = 0.0
    rep_capacity_leads_per_month: Annotated[int, whole_number(1)] = 150
    conversion: dict[str, Rate] = Field(default_factory=dict)


class KafkaSettings(BaseModel):
    """``[kafka]``: security and the start-up wait; ``sasl_password`` comes from the variable
    ``sasl_password_env``."""

    model_config = FROZEN

    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password_env: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    # How long a command waits for the brokers to answer at its start before it fails
    # with one line naming them.
    connect_timeout: PositiveSeconds = parse_duration("10s")


class Settings(BaseModel):
    """Everything the processes are configured with; frozen, built by ``load_settings()``."""

    model_config = FROZEN

    funnel: FunnelSettings = FunnelSettings()
    labels: LabelSettings = LabelSettings()
    sla: SlaSettings = SlaSettings()
    north_star: NorthStarSettings = NorthStarSettings()
    report: ReportSettings = ReportSettings()
    kafka: KafkaSettings = KafkaSettings()
    ingest: IngestSettings = IngestSettings()

    broker: Annotated[tuple[str, ...], BeforeValidator(brokers)] = ("127.0.0.1:9092",)
    web_port: Annotated[int, whole_number(1, 65535, text=True)] = 6066
    web_bind: str = "127.0.0.1"
    clock: Literal["wall", "event"] = "wall"
    data_dir: Path = Path("./var")
    topic_prefix: KafkaName = "funnel."
    partitions: Annotated[int, whole_number(1, text=True)] = 8
    store: Literal["rocksdb", "memory"] = "rocksdb"
    app_id: KafkaName = "funnel"
    config_path: Path | None = None

    @property
    def bootstrap_servers(self) -> list[str]:
        """The brokers as ``host:port`` strings (for aiokafka clients)."""
        return list(self.broker)

    @property
    def faust_broker(self) -> str:
        """The brokers as Faust's ``broker`` argument: ``kafka://h1:9092;kafka://h2:9092``."""
        return ";".join(f"kafka://{server}" for server in self.broker)

    @property
    def topics(self) -> TopicNames:
        """The topic names for the configured prefix."""
        return TopicNames.from_prefix(self.topic_prefix)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        """The checks that span keys; each names the key it refuses."""
        funnel, sla, north_star, kafka = self.funnel, self.sla, self.north_star, self.kafka
        stages, all_stages = funnel.stages, funnel.all_stages
        if len(stages) < 2:
            raise Refused("funnel.stages", "must list at least two stages")
        for stage in funnel.extra_stages:
            if stage in stages:
                raise Refused("funnel.extra_stages", f"{stage!r} is already in funnel.stages")
        for key in funnel.definitions:
            if key not in all_stages:
                raise Refused(f"funnel.definitions.{key}", _not_among(all_stages))
        for key in funnel.stuck_after:
            if key not in stages:
                raise Refused(f"funnel.stuck_after.{key}", _not_among(stages))
        if funnel.window_retention < max(funnel.window_seconds):
            raise Refused("funnel.window_retention", "must be at least the longest window")
        if sla.clock_starts_at not in stages:
            raise Refused("sla.clock_starts_at", _not_among(stages, sla.clock_starts_at))
        for index, stage in enumerate(sla.followup_stages):
            if stage not in all_stages:
                raise Refused(f"sla.followup_stages[{index}]", _not_among(all_stages, stage))
            if stage == sla.clock_starts_at:
                raise Refused(f"sla.followup_stages[{index}]", "must not be sla.clock_starts_at")
        for key in north_star.conversion:
            if key not in stages[:-1]:
                raise Refused(f"north_star.conversion.{key}", _not_among(stages[:-1]))
        if north_star.revenue_goal > 0 and north_star.average_deal_size <= 0:
            raise Refused("north_star.average_deal_size", "must be > 0 when revenue_goal is set")
        for key in ("sasl_mechanism", "sasl_username", "sasl_password_env"):
            if kafka.security_protocol.startswith("SASL_") and getattr(kafka, key) is None:
                raise Refused(f"kafka.{key}", f"required with {kafka.security_protocol}")
        targets = (LEAD_CREATED, *all_stages)
        segment, hubspot = self.ingest.segment, self.ingest.hubspot
        for table, mapping, allowed in (
            ("ingest.segment.track_events", segment.track_events, targets),
            ("ingest.segment.stage_values", segment.stage_values, targets),
            ("ingest.hubspot.stages", hubspot.stages, all_stages),
        ):
            for key, target in mapping.items():
                if target not in allowed:
                    refusal = f"must be {' or '.join(allowed[:1])} or a configured stage"
                    if allowed is all_stages:
                        refusal = _not_among(all_stages)
                    raise Refused(f"{table}.{key}", f"{refusal}, got {target!r}")
        for value in hubspot.ignored_stages:
            if value in hubspot.stages:
                raise Refused("ingest.hubspot.ignored_stages", f"{value!r} is also in stages")
        return self


def _not_among(stages: tuple[str, ...], got: str | None = None) -> str:
    message = f"not a configured stage (one of {', '.join(stages)})"
    return message if got is None else f"{message}, got {got!r}"
