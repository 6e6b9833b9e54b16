"""Settings: defaults, the example file, environment overrides and every refusal."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from stream.config.funnel_rules import rules_from_settings
from stream.config.loading import load_settings
from stream.config.settings import BusinessHours, Settings
from stream.config.topics import TopicNames
from stream.core.rules import FunnelRules
from stream.errors import ConfigError

# The contract's example configuration (the project's own copy): every key with its default.
EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "contract" / "funnel.example.toml"

# The example with every "example" line switched on, plus our own key.
FULL_TOML = """\
[funnel]
time_zone = "Europe/Madrid"
orphan_hold = "30m"
[funnel.definitions]
mql = "Lead from a company of 10+ employees that downloaded a guide or asked for a demo"
sql = "Sales accepted it after a first call: budget, need and timing confirmed"
[funnel.stuck_after]
mql = "14d"
sql = "21d"
opportunity = "45d"
[labels]
source = ["organic", "paid_search", "social", "email", "referral", "direct"]
team = ["sales-emea", "sales-amer"]
[sla]
clock_starts_at = "mql"
followup_within = "4h"
[sla.business_hours]
time_zone = "Europe/Madrid"
days = ["mon", "tue", "wed", "thu", "fri"]
start = "09:00"
end = "18:00"
holidays = ["2026-12-25", "2027-01-01"]
[sla.marketing]
mql_per_month = 400
sql_per_month = 120
[north_star]
revenue_goal = 1200000
period = "quarter"
average_deal_size = 12000.5
[north_star.conversion]
visit = 0.025
lead = 0.25
mql = 0.35
sql = 0.5
opportunity = 0.25
[kafka]
security_protocol = "SASL_SSL"
sasl_mechanism = "SCRAM-SHA-256"
sasl_username = "funnel"
sasl_password_env = "FUNNEL_KAFKA_PASSWORD"
ssl_cafile = "/etc/funnel/ca.pem"
"""

PASSWORD = "correct-horse-battery-staple"
HOURS = "time_zone = 'UTC'\nstart = '09:00'\nend = '17:00'\n"
BACKWARDS = "time_zone = 'UTC'\nstart = '18:00'\nend = '09:00'"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "funnel.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    settings = load_settings(environ={})

    funnel, sla, north_star = settings.funnel, settings.sla, settings.north_star
    assert settings == Settings()
    assert settings.config_path is None
    assert funnel.stages == ("visit", "lead", "mql", "sql", "opportunity", "customer")
    assert funnel.all_stages[-2:] == ("contacted", "disqualified")
    assert (funnel.time_zone, funnel.windows) == ("UTC", ("1h", "1d"))
    assert funnel.window_seconds == (3_600.0, 86_400.0)
    assert (funnel.window_retention, funnel.dedupe_horizon) == (35 * 86_400, 7 * 86_400)
    assert (funnel.orphan_hold, funnel.definitions) == (3_600, {})
    assert settings.labels.max_values == 50
    assert (settings.labels.source, settings.labels.campaign, settings.labels.team) == (None,) * 3
    assert (sla.followup_within, sla.clock_starts_at, sla.breach_grace) == (86_400, "lead", 0)
    assert sla.followup_stages == ("contacted", "sql", "opportunity", "customer", "disqualified")
    assert sla.business_hours is None
    assert sla.marketing.mql_per_month == sla.marketing.sql_per_month == 0
    assert (north_star.revenue_goal, north_star.average_deal_size) == (0, 0)
    assert north_star.period == "year"
    assert (north_star.rep_capacity_leads_per_month, north_star.conversion) == (150, {})
    assert (settings.kafka.security_protocol, settings.kafka.sasl_password) == ("PLAINTEXT", None)
    assert settings.broker == ("127.0.0.1:9092",)
    assert settings.bootstrap_servers == ["127.0.0.1:9092"]
    assert settings.faust_broker == "kafka://127.0.0.1:9092"
    assert (settings.web_port, settings.web_bind) == (6066, "127.0.0.1")
    assert (settings.clock, settings.store, settings.app_id) == ("wall", "rocksdb", "funnel")
    assert (settings.data_dir, settings.partitions) == (Path("var"), 8)
    assert settings.topics == TopicNames.from_prefix("funnel.")


def test_the_default_settings_give_the_core_s_default_rules() -> None:
    """Tests and tools that build ``FunnelRules()`` apply what a worker without a file does."""
    assert rules_from_settings(Settings()) == FunnelRules()


def test_the_contract_s_example_file_holds_exactly_the_defaults() -> None:
    assert load_settings(EXAMPLE, environ={}) == Settings(config_path=EXAMPLE)


def test_funnel_config_names_the_file_and_an_argument_wins(tmp_path: Path) -> None:
    path = write(tmp_path, "[labels]\nmax_values = 7\n")
    other = tmp_path / "other.toml"
    other.write_text("[labels]\nmax_values = 9\n", encoding="utf-8")

    assert load_settings(environ={"FUNNEL_CONFIG": str(path)}).labels.max_values == 7
    assert load_settings(other, environ={"FUNNEL_CONFIG": str(path)}).labels.max_values == 9


def test_every_example_key_switched_on(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FULL_TOML), {"FUNNEL_KAFKA_PASSWORD": PASSWORD})

    assert settings.funnel.orphan_hold == 1_800
    assert set(settings.funnel.definitions) == {"mql", "sql"}
    assert settings.funnel.stuck_after == {
        "mql": 14 * 86_400,
        "sql": 21 * 86_400,
        "opportunity": 45 * 86_400,
    }
    assert (settings.labels.team, settings.labels.campaign) == (("sales-emea", "sales-amer"), None)
    assert (settings.sla.clock_starts_at, settings.sla.followup_within) == ("mql", 4 * 3_600)
    assert settings.sla.marketing.mql_per_month == 400
    assert settings.sla.business_hours == BusinessHours(
        time_zone="Europe/Madrid",
        days=("mon", "tue", "wed", "thu", "fri"),
        start=datetime.time(9, 0),
        end=datetime.time(18, 0),
        holidays=(datetime.date(2026, 12, 25), datetime.date(2027, 1, 1)),
    )
    assert (settings.north_star.period, settings.north_star.revenue_goal) == ("quarter", 1.2e6)
    assert settings.north_star.conversion["visit"] == 0.025
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.kafka.ssl_cafile == Path("/etc/funnel/ca.pem")
    assert settings.kafka.sasl_password == SecretStr(PASSWORD)
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert PASSWORD not in text


def test_warnings_keep_their_labels_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, "[sla]\nwarn_before = ['2h', '30m']\n")
    settings = load_settings(path, environ={})
    assert settings.sla.warn_before == ("2h", "30m")
    assert rules_from_settings(settings).warn_before == (("2h", 7200.0), ("30m", 1800.0))
    assert rules_from_settings(load_settings(None, environ={})).warn_before == (
        ("4h", 14400.0),
        ("1h", 3600.0),
    )


def test_business_hours_accept_toml_native_times_and_dates(tmp_path: Path) -> None:
    text = (
        "[sla.business_hours]\ntime_zone = 'America/New_York'\ndays = ['sat', 'sun']\n"
        "start = 10:00:00\nend = 14:30:00\nholidays = [2026-07-04]\n"
    )
    hours = load_settings(write(tmp_path, text), environ={}).sla.business_hours

    assert hours is not None
    assert (hours.start, hours.end) == (datetime.time(10), datetime.time(14, 30))
    assert (hours.days, hours.holidays) == (("sat", "sun"), (datetime.date(2026, 7, 4),))


def test_a_country_adds_its_public_holidays_to_the_listed_ones(tmp_path: Path) -> None:
    """Bavaria closes on Epiphany, Germany on Unity Day; the listed date is kept too."""
    text = (
        f"[sla.business_hours]\n{HOURS}holidays = ['2026-12-24']\n"
        "holidays_country = 'DE'\nholidays_subdivision = 'BY'\n"
    )
    settings = load_settings(write(tmp_path, text), environ={})
    rules = rules_from_settings(settings, today=datetime.date(2026, 6, 1))

    assert rules.calendar is not None
    closed = rules.calendar.holidays
    for day in ("2026-12-24", "2026-01-06", "2026-10-03", "2021-12-25", "2028-01-01"):
        assert datetime.date.fromisoformat(day) in closed, day
    assert datetime.date(2020, 12, 25) not in closed  # years resolved: 5 back, 2 ahead
    assert datetime.date(2029, 1, 1) not in closed
    assert datetime.date(2026, 1, 7) not in closed  # a working day
    germany = BusinessHours.model_validate(
        {"time_zone": "UTC", "start": "09:00", "end": "17:00", "holidays_country": "DE"}
    )
    assert datetime.date(2026, 1, 6) not in germany.closed_dates([2026])  # not a national one


def test_environment_sets_the_runtime_values() -> None:
    settings = load_settings(
        environ={
            "FUNNEL_BROKER": "kafka://k1:9092, k2:9093",
            "FUNNEL_WEB_PORT": "7000",
            "FUNNEL_WEB_BIND": "0.0.0.0",
            "FUNNEL_CLOCK": "event",
            "FUNNEL_DATA_DIR": "/srv/funnel",
            "FUNNEL_TOPIC_PREFIX": "acme.funnel.",
            "FUNNEL_PARTITIONS": "12",
            "FUNNEL_STORE": "memory",
            "FUNNEL_APP_ID": "funnel-eu",
        }
    )

    assert settings.broker == ("k1:9092", "k2:9093")
    assert settings.bootstrap_servers == ["k1:9092", "k2:9093"]
    assert settings.faust_broker == "kafka://k1:9092;kafka://k2:9093"
    assert (settings.web_port, settings.web_bind, settings.clock) == (7000, "0.0.0.0", "event")
    assert settings.data_dir == Path("/srv/funnel")
    assert settings.topics.visits == "acme.funnel.visits"
    assert (settings.partitions, settings.store, settings.app_id) == (12, "memory", "funnel-eu")


def test_an_empty_variable_counts_as_unset() -> None:
    settings = load_settings(environ={"FUNNEL_CONFIG": "", "FUNNEL_PARTITIONS": ""})

    assert (settings.config_path, settings.partitions) == (None, 8)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[kafka]\nsecurity_protocol = 'SSL'\nssl_cafile = '/etc/a.pem'\n")
    settings = load_settings(
        path,
        environ={
            "FUNNEL_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "FUNNEL_KAFKA_SASL_MECHANISM": "PLAIN",
            "FUNNEL_KAFKA_SASL_USERNAME": "svc",
            "FUNNEL_KAFKA_SASL_PASSWORD_ENV": "SECRET",
            "FUNNEL_KAFKA_SSL_CAFILE": "/etc/b.pem",
            "SECRET": PASSWORD,
        },
    )

    assert settings.kafka.security_protocol == "SASL_PLAINTEXT"
    assert settings.kafka.sasl_username == "svc"
    assert settings.kafka.ssl_cafile == Path("/etc/b.pem")
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == PASSWORD


def test_settings_are_frozen() -> None:
    settings = Settings()

    with pytest.raises(ValidationError):
        settings.partitions = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.funnel.stages = ("a", "b")  # type: ignore[misc]


# (section, its body, the message after "<file>: "): one bad key each.
FILE_REFUSALS = [
    ("labels", "colour = 'red'", "labels.colour: unknown key"),
    ("north_star.conversion", "mql = 1.5", "north_star.conversion.mql: must be in (0, 1], got 1.5"),
    ("north_star.conversion", "lead = 0", "north_star.conversion.lead: must be in (0, 1], got 0"),
    ("north_star.conversion", "lead = '0.5'", "north_star.conversion.lead: must be a valid number"),
    ("north_star.conversion", "customer = 0.5", "north_star.conversion.customer: not a configured"),
    ("north_star", "revenue_goal = -1", "north_star.revenue_goal: must be ≥ 0, got -1"),
    ("north_star", "revenue_goal = inf", "north_star.revenue_goal: must be a finite number"),
    ("north_star", "average_deal_size = -2.5", "north_star.average_deal_size: must be ≥ 0"),
    ("north_star", "revenue_goal = 1e6", "north_star.average_deal_size: must be > 0 when"),
    ("north_star", "period = 'week'", "north_star.period: must be 'month', 'quarter' or 'year'"),
    ("north_star", "rep_capacity_leads_per_month = 0", "north_star.rep_capacity_leads_per_month:"),
    ("funnel", "stages = ['visit']", "funnel.stages: must list at least two stages"),
    ("funnel", "stages = ['visit', 'Lead']", "funnel.stages[1]: must be a name made of a-z"),
    ("funnel", "stages = ['visit', 'lead', 'visit']", "funnel.stages: lists 'visit' twice"),
    ("funnel", "extra_stages = ['lead']", "funnel.extra_stages: 'lead' is already in funnel"),
    ("funnel", "time_zone = 'Mars/Olympus'", "funnel.time_zone: must be an IANA time zone"),
    ("funnel", "windows = ['1h', 'daily']", "funnel.windows[1]: must be a duration"),
    ("funnel", "windows = ['0s']", "funnel.windows[0]: must be longer than 0s, got '0s'"),
    ("funnel", "windows = ['7h']", "funnel.windows[0]: width must divide a day or be a whole"),
    ("funnel", "windows = []", "funnel.windows: must not be empty"),
    ("funnel", "window_retention = 30", "funnel.window_retention: must be a duration"),
    ("funnel", "window_retention = '12h'", "funnel.window_retention: must be at least the longest"),
    ("funnel", "dedupe_horizon = '0s'", "funnel.dedupe_horizon: must be longer than 0s, got '0s'"),
    ("funnel", "orphan_hold = 'soon'", "funnel.orphan_hold: must be a duration"),
    ("funnel.definitions", "whale = 'big'", "funnel.definitions.whale: not a configured stage"),
    ("labels", "max_values = 0", "labels.max_values: must be a whole number ≥ 1, got 0"),
    ("labels", "max_values = '50'", "labels.max_values: must be a whole number ≥ 1, got '50'"),
    ("labels", "team = []", "labels.team: must not be empty"),
    ("sla", "followup_within = '0s'", "sla.followup_within: must be longer than 0s, got '0s'"),
    ("sla", "breach_grace = '1 hour'", "sla.breach_grace: must be a duration"),
    ("sla", "clock_starts_at = 'contacted'", "sla.clock_starts_at: not a configured stage"),
    ("sla", "followup_stages = ['sql', 'called']", "sla.followup_stages[1]: not a configured"),
    ("sla", "followup_stages = ['lead']", "sla.followup_stages[0]: must not be sla.clock_start"),
    ("sla.marketing", "mql_per_month = -1", "sla.marketing.mql_per_month: must be a whole number"),
    ("sla.business_hours", "start = 09:00:00", "sla.business_hours.time_zone: required key is"),
    ("sla.business_hours", HOURS + "days = []", "sla.business_hours.days: must not be empty"),
    ("sla.business_hours", "time_zone = 'UTC'\nstart = 09:00:00", "sla.business_hours.end:"),
    ("sla.business_hours", BACKWARDS, "sla.business_hours.end: must be later than start (18:00"),
    ("sla.business_hours", HOURS + "days = ['funday']", "sla.business_hours.days[0]: must be"),
    ("sla.business_hours", HOURS + "holidays = ['25/12']", "sla.business_hours.holidays[0]: must"),
    (
        "sla.business_hours",
        HOURS + "holidays_country = 'XX'",
        "sla.business_hours.holidays_country: unknown to the holidays package",
    ),
    (
        "sla.business_hours",
        HOURS + "holidays_country = 'DE'\nholidays_subdivision = 'ZZ'",
        "sla.business_hours.holidays_subdivision: unknown to the holidays package",
    ),
    (
        "sla.business_hours",
        HOURS + "holidays_subdivision = 'BY'",
        "sla.business_hours.holidays_subdivision: needs holidays_country",
    ),
    (
        "funnel.stuck_after",
        "contacted = '1d'",
        "funnel.stuck_after.contacted: not a configured stage",
    ),
    ("funnel.stuck_after", "mql = '0s'", "funnel.stuck_after.mql: must be longer than 0s"),
    ("sla", "warn_before = ['0s']", "sla.warn_before[0]: must be longer than 0s"),
    ("sla", "warn_before = ['1h', '1h']", "sla.warn_before: lists '1h' twice"),
    ("sla", "warn_before = ['1h', '60m']", "sla.warn_before: lists one duration twice"),
    ("kafka", "security_protocol = 'TLS'", "kafka.security_protocol: must be 'PLAINTEXT', 'SASL_"),
    ("kafka", "sasl_mechanism = 'GSSAPI'", "kafka.sasl_mechanism: must be 'PLAIN', 'SCRAM-"),
    ("kafka", "security_protocol = 'SASL_SSL'", "kafka.sasl_mechanism: required with SASL_SSL"),
    ("kafka", "sasl_password = 'hunter2'", "kafka.sasl_password: the password may not sit in the"),
    ("kafka", "sasl_password_env = 'PW'", "kafka.sasl_password_env: PW is not set"),
]

ENV_REFUSALS = [
    ("FUNNEL_PARTITIONS", "x", "must be a whole number ≥ 1, got 'x'"),
    ("FUNNEL_PARTITIONS", "0", "must be a whole number ≥ 1, got '0'"),
    ("FUNNEL_WEB_PORT", "99999", "must be a whole number from 1 to 65535, got '99999'"),
    ("FUNNEL_CLOCK", "sundial", "must be 'wall' or 'event', got 'sundial'"),
    ("FUNNEL_STORE", "redis", "must be 'rocksdb' or 'memory', got 'redis'"),
    ("FUNNEL_BROKER", "kafka://k1", "must be host:port"),
    ("FUNNEL_BROKER", "k1:9092,", "must be host:port"),
    ("FUNNEL_TOPIC_PREFIX", "my prefix", "must be made of"),
    ("FUNNEL_APP_ID", "a/b", "must be made of"),
    ("FUNNEL_KAFKA_SECURITY_PROTOCOL", "TLS", "must be 'PLAINTEXT'"),
    ("FUNNEL_KAFKA_SASL_PASSWORD_ENV", "NOPE", "NOPE is not set"),
]


@pytest.mark.parametrize(("section", "body", "message"), FILE_REFUSALS)
def test_file_refusals_name_the_file_and_the_key(
    tmp_path: Path, section: str, body: str, message: str
) -> None:
    path = write(tmp_path, f"[{section}]\n{body}\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})

    assert str(caught.value).startswith(f"{path}: {message}")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("variable", "value", "message"), ENV_REFUSALS)
def test_environment_refusals_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={variable: value})

    assert str(caught.value).startswith(f"{variable}: {message}")


def test_a_top_level_key_outside_the_sections_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "broker = 'k1:9092'\n")

    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: broker: unknown key$"):
        load_settings(path, environ={})


def test_several_problems_are_reported_on_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[labels]\ncolour = 1\nmax_values = 0\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"FUNNEL_PARTITIONS": "many"})

    assert str(caught.value) == (
        f"{path}: labels.max_values: must be a whole number ≥ 1, got 0; "
        f"{path}: labels.colour: unknown key; "
        "FUNNEL_PARTITIONS: must be a whole number ≥ 1, got 'many'"
    )


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    with pytest.raises(ConfigError, match=r"^config file not found: .*absent\.toml$"):
        load_settings(path, environ={})
    with pytest.raises(ConfigError, match=r"^config file not found: .*absent\.toml$"):
        load_settings(environ={"FUNNEL_CONFIG": str(path)})


def test_a_toml_syntax_error_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[funnel\nstages = 1\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})

    shown = str(caught.value)
    assert shown.startswith(f"{path}: not valid TOML: ")
    assert "line 1" in shown
    assert "\n" not in shown


def test_the_gateways_secrets_come_only_from_the_environment(tmp_path: Path) -> None:
    env = {
        "FUNNEL_INGEST_WRITE_KEYS": " wk-one ,wk-two,",
        "FUNNEL_HUBSPOT_APP_SECRET": "hs-secret",
        "FUNNEL_INGEST_PORT": "9000",
        "FUNNEL_INGEST_BIND": "0.0.0.0",
    }
    settings = load_settings(write(tmp_path, "[ingest.hubspot]\nteam = 'sales-emea'\n"), env)
    ingest = settings.ingest
    assert [key.get_secret_value() for key in ingest.write_keys] == ["wk-one", "wk-two"]
    assert ingest.hubspot.app_secret == SecretStr("hs-secret")
    assert (ingest.port, ingest.bind, ingest.hubspot.team) == (9000, "0.0.0.0", "sales-emea")
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "wk-one" not in text and "hs-secret" not in text
    for table, key in (("ingest", "write_keys"), ("ingest.hubspot", "app_secret")):
        with pytest.raises(ConfigError, match=f"ingest.*{key}: secrets may not sit in the file"):
            load_settings(write(tmp_path, f"[{table}]\n{key} = 'x'\n"), environ={})
    with pytest.raises(ConfigError, match="FUNNEL_INGEST_PORT: must be a whole number"):
        load_settings(environ={"FUNNEL_INGEST_PORT": "http"})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            "[ingest.segment.track_events]\n'Signed Up' = 'won'",
            "ingest.segment.track_events.Signed Up",
        ),
        ("[ingest.segment.stage_values]\nhot = 'lead_made'", "ingest.segment.stage_values.hot"),
        ("[ingest.hubspot.stages]\ncustomer = 'lead_created'", "ingest.hubspot.stages.customer"),
        ("[ingest.hubspot]\nignored_stages = ['lead']", "ingest.hubspot.ignored_stages"),
        ("[ingest.segment]\ndefault_source = ''", "ingest.segment.default_source"),
        ("[ingest]\ncolour = 'blue'", "ingest.colour"),
    ],
)
def test_a_bad_ingest_mapping_is_refused_naming_the_key(
    tmp_path: Path, text: str, key: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_settings(write(tmp_path, text + "\n"), environ={})
