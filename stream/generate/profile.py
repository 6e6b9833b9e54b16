"""The traffic profile: every rate and delay of the synthetic funnel, with published defaults.

Conversion rates are the usual B2B benchmarks (visit→lead 2.5 %, lead→MQL 25 %, MQL→SQL 35 %,
SQL→opportunity 50 %, opportunity→customer 25 %). The first follow-up mix comes from the Harvard
Business Review lead-response audit ("The Short Life of Online Sales Leads", 2011): 37 % of
companies answered within an hour, 16 % within 1–24 h, 24 % after more than a day, 23 % never.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HOUR_S = 3600.0
DAY_S = 86400.0

# The rejection reasons a malformed message may be built to trigger (events.md, "Bad input").
MALFORMED_KINDS = (
    "invalid_json",
    "wrong_topic_for_type",
    "schema_violation",
    "unknown_stage",
    "key_mismatch",
    "future_timestamp",
)

DelayRange = tuple[float, float]


@dataclass(frozen=True, slots=True)
class TrafficProfile:
    """Rates, mixes and delays of the synthetic traffic; every field has a realistic default.

    Probabilities are fractions in [0, 1]. A delay range ``(low, high)`` in seconds is sampled
    log-uniformly, so short delays are as common per decade as long ones. Weights need not sum
    to 1. Invalid values raise ``ValueError`` when the profile is built.
    """

    # Funnel conversion, each stage to the next.
    visit_to_lead: float = 0.025
    lead_to_mql: float = 0.25
    mql_to_sql: float = 0.35
    sql_to_opportunity: float = 0.5
    opportunity_to_customer: float = 0.25

    # First sales follow-up after lead_created (HBR audit); must sum to 1.
    followup_within_1h: float = 0.37
    followup_1h_to_24h: float = 0.16
    followup_after_24h: float = 0.24
    followup_never: float = 0.23
    followup_latest_s: float = 7 * DAY_S
    # Share of followed-up leads whose first touch is directly their next follow-up stage
    # (qualified to ``sql`` or ``disqualified`` in the first call) instead of ``contacted``.
    direct_first_touch: float = 0.2
    # Share of stalled, followed-up leads that get a second ``contacted`` touch (a re-entry).
    retouch: float = 0.1
    # Share of followed-up leads stalled at lead/MQL that sales later disqualify, and of
    # SQLs/opportunities that are lost (recorded as ``disqualified``).
    disqualify_stalled: float = 0.5
    disqualify_lost: float = 0.8

    # Delays between steps, seconds (log-uniform in the range).
    lead_form_delay_s: DelayRange = (5.0, 15 * 60.0)
    mql_delay_s: DelayRange = (10 * 60.0, 5 * DAY_S)
    sql_delay_s: DelayRange = (HOUR_S, 10 * DAY_S)
    opportunity_delay_s: DelayRange = (DAY_S, 21 * DAY_S)
    customer_delay_s: DelayRange = (7 * DAY_S, 45 * DAY_S)
    disqualify_delay_s: DelayRange = (HOUR_S, 14 * DAY_S)
    retouch_delay_s: DelayRange = (DAY_S, 7 * DAY_S)

    # Acquisition: channel weights, campaigns per channel, pages.
    sources: tuple[tuple[str, float], ...] = (
        ("organic", 0.35),
        ("direct", 0.20),
        ("paid_search", 0.18),
        ("social", 0.10),
        ("referral", 0.09),
        ("email", 0.08),
    )
    campaigns: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("paid_search", ("brand-search", "generic-search", "competitor-search")),
        ("social", ("linkedin-webinar", "linkedin-retargeting", "x-product-launch")),
        ("email", ("newsletter-weekly", "nurture-onboarding", "event-invite")),
    )
    campaign_share: float = 0.9
    pages: tuple[tuple[str, float], ...] = (
        ("/", 0.30),
        ("/product", 0.15),
        ("/pricing", 0.12),
        ("/blog/sales-follow-up-benchmarks", 0.10),
        ("/blog/funnel-metrics-that-matter", 0.08),
        ("/docs/getting-started", 0.08),
        ("/customers", 0.06),
        ("/integrations", 0.05),
        ("/careers", 0.03),
        ("/about", 0.03),
    )
    # The page of a visit that turns into a lead: where the form is.
    form_pages: tuple[str, ...] = ("/demo", "/contact", "/trial", "/guides/pipeline-playbook")
    returning_visitors: float = 0.3

    # Sales teams (lead_created.team), reps per team (``owner``), and how often a stage
    # change repeats the team.
    teams: tuple[tuple[str, float], ...] = (("sales-emea", 0.45), ("sales-amer", 0.55))
    reps_per_team: int = 12
    team_on_transition: float = 0.25

    # Delivery noise, as shares of events: re-sent copies, late deliveries, bad messages.
    duplicates: float = 0.01
    duplicate_latest_s: float = 300.0
    out_of_order: float = 0.02
    out_of_order_latest_s: float = 600.0
    malformed: float = 0.001
    malformed_mix: tuple[tuple[str, float], ...] = (
        ("invalid_json", 0.3),
        ("schema_violation", 0.3),
        ("unknown_stage", 0.15),
        ("key_mismatch", 0.15),
        ("wrong_topic_for_type", 0.1),
        ("future_timestamp", 0.0),
    )
    # How far ahead of its event time a ``future_timestamp`` message claims to be.
    future_skew_s: float = DAY_S

    def __post_init__(self) -> None:
        for name in (
            "visit_to_lead",
            "lead_to_mql",
            "mql_to_sql",
            "sql_to_opportunity",
            "opportunity_to_customer",
            "followup_within_1h",
            "followup_1h_to_24h",
            "followup_after_24h",
            "followup_never",
            "direct_first_touch",
            "retouch",
            "disqualify_stalled",
            "disqualify_lost",
            "campaign_share",
            "returning_visitors",
            "team_on_transition",
            "duplicates",
            "out_of_order",
            "malformed",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"TrafficProfile.{name} must be within [0, 1], got {value}")
        mix = self.followup_mix()
        if not math.isclose(sum(mix), 1.0, abs_tol=1e-9):
            raise ValueError(f"TrafficProfile follow-up shares must sum to 1, got {sum(mix)}")
        if self.followup_never > 1.0 - self.sql_share() + 1e-12:
            # Every SQL was followed up, so "never" cannot exceed the leads that stay below SQL.
            raise ValueError("TrafficProfile.followup_never exceeds the share of leads below SQL")
        if self.duplicates + self.out_of_order + self.malformed > 1.0:
            raise ValueError("TrafficProfile duplicates + out_of_order + malformed exceed 1")
        for name in (
            "lead_form_delay_s",
            "mql_delay_s",
            "sql_delay_s",
            "opportunity_delay_s",
            "customer_delay_s",
            "disqualify_delay_s",
            "retouch_delay_s",
        ):
            low, high = getattr(self, name)
            if not 0.0 < low <= high:
                raise ValueError(f"TrafficProfile.{name} must satisfy 0 < low <= high")
        if self.followup_latest_s <= DAY_S:
            raise ValueError("TrafficProfile.followup_latest_s must exceed one day")
        for name in ("duplicate_latest_s", "out_of_order_latest_s", "future_skew_s"):
            if getattr(self, name) < 1.0:
                raise ValueError(f"TrafficProfile.{name} must be at least 1 s")
        for name in ("sources", "pages", "teams", "malformed_mix"):
            _check_weights(name, getattr(self, name))
        unknown = {kind for kind, _ in self.malformed_mix} - set(MALFORMED_KINDS)
        if unknown:
            raise ValueError(f"TrafficProfile.malformed_mix has unknown kinds {sorted(unknown)}")
        if not self.form_pages:
            raise ValueError("TrafficProfile.form_pages must not be empty")
        if self.reps_per_team < 1:
            raise ValueError("TrafficProfile.reps_per_team must be at least 1")

    def followup_mix(self) -> tuple[float, float, float, float]:
        """Shares of leads first followed up within 1 h, in 1–24 h, after 24 h, and never."""
        return (
            self.followup_within_1h,
            self.followup_1h_to_24h,
            self.followup_after_24h,
            self.followup_never,
        )

    def sql_share(self) -> float:
        """Share of leads that reach ``sql`` (and so were necessarily followed up)."""
        return self.lead_to_mql * self.mql_to_sql

    def events_per_lead(self) -> float:
        """Expected number of events of one lead (lead_created and its stage changes)."""
        mql = self.lead_to_mql
        sql = mql * self.mql_to_sql
        opportunity = sql * self.sql_to_opportunity
        customer = opportunity * self.opportunity_to_customer
        stalled_touched = 1.0 - sql - self.followup_never
        direct_disqualified = self.direct_first_touch * self.disqualify_stalled
        contacted = sql * (1.0 - self.direct_first_touch) + stalled_touched * (
            1.0 - direct_disqualified
        ) * (1.0 + self.retouch)
        disqualified = (
            stalled_touched * self.disqualify_stalled + (sql - customer) * self.disqualify_lost
        )
        return 1.0 + mql + sql + opportunity + customer + contacted + disqualified

    def messages_per_visit(self) -> float:
        """Expected messages (all topics, noise included) per visit, in steady state."""
        events = 1.0 + self.visit_to_lead * self.events_per_lead()
        return events * (1.0 + self.duplicates + self.malformed)


def _check_weights(name: str, pairs: tuple[tuple[str, float], ...]) -> None:
    if not pairs or any(weight < 0 for _, weight in pairs):
        raise ValueError(f"TrafficProfile.{name} needs at least one entry and no negative weight")
    if sum(weight for _, weight in pairs) <= 0:
        raise ValueError(f"TrafficProfile.{name} weights must not all be zero")
    if any(not label for label, _ in pairs):
        raise ValueError(f"TrafficProfile.{name} has an empty name")


DEFAULT_PROFILE = TrafficProfile()
