"""Topic names for a prefix, and the kind ``classify`` reads each input topic as."""

from __future__ import annotations

from typing import get_args

from schemas import TopicKind
from stream.config.topics import TopicNames


def test_names_follow_the_prefix() -> None:
    names = TopicNames.from_prefix("acme.")
    assert names.inputs == ("acme.visits", "acme.leads", "acme.stage-transitions")
    assert names.dead_letter == "acme.dead-letter"


def test_every_input_topic_has_its_kind_in_the_spec_order() -> None:
    names = TopicNames.from_prefix("acme.")
    assert list(names.kinds) == list(names.inputs)
    assert tuple(names.kinds.values()) == get_args(TopicKind)
