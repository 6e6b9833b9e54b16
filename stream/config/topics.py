"""Topic names: the one place that knows them (events.md, "Topics and keys")."""

from __future__ import annotations

from dataclasses import dataclass

from schemas import TopicKind


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Names of the input and dead-letter topics for one topic prefix."""

    visits: str
    leads: str
    transitions: str
    dead_letter: str

    @classmethod
    def from_prefix(cls, prefix: str = "funnel.") -> TopicNames:
        """Names for ``prefix`` (default ``funnel.``)."""
        return cls(
            visits=f"{prefix}visits",
            leads=f"{prefix}leads",
            transitions=f"{prefix}stage-transitions",
            dead_letter=f"{prefix}dead-letter",
        )

    @property
    def inputs(self) -> tuple[str, str, str]:
        """The three input topics, in the spec's order."""
        return (self.visits, self.leads, self.transitions)

    @property
    def kinds(self) -> dict[str, TopicKind]:
        """Each input topic's name mapped to the kind ``schemas.classify`` reads it as."""
        return {self.visits: "visits", self.leads: "leads", self.transitions: "transitions"}


# Faust names a table's changelog topic "<app id>-<table name>-changelog".
STATE_TABLES = ("lead_states", "visitor_states")


def changelog_topics(app_id: str) -> tuple[str, ...]:
    """The internal (changelog) topics of the worker's state tables."""
    return tuple(f"{app_id}-{table}-changelog" for table in STATE_TABLES)


def rerouted_topic(app_id: str, topic: str) -> str:
    """The internal topic that records of input ``topic`` read from another partition than
    their key's home partition are moved to (same partition count, co-partitioned with it)."""
    return f"{app_id}-{topic}-rerouted"


def rerouted_topics(app_id: str, names: TopicNames) -> dict[str, str]:
    """Input topic → its ``rerouted_topic``, for the three inputs."""
    return {topic: rerouted_topic(app_id, topic) for topic in names.inputs}
