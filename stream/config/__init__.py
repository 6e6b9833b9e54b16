"""Configuration: the one frozen settings object, topic names, and the core's rules.

Everything here is plain Python (no Faust, no Kafka client): the worker, the reports and the
tests build their ``FunnelRules`` from the same ``Settings``. The duration parser is the
core's (``stream.core.durations``), re-exported here for callers that read configuration.
"""

from stream.config.funnel_rules import rules_from_settings
from stream.config.loading import load_settings
from stream.config.settings import Settings
from stream.config.topics import TopicNames, changelog_topics, rerouted_topics
from stream.core.durations import format_duration, parse_duration

__all__ = [
    "Settings",
    "TopicNames",
    "changelog_topics",
    "format_duration",
    "load_settings",
    "parse_duration",
    "rerouted_topics",
    "rules_from_settings",
]
