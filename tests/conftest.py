"""Fixtures shared by the whole test tree.

One embedded broker (Tansu, in memory) serves the whole session (``make test`` runs two
pytest-xdist workers, each a session with a broker of its own); tests keep apart by giving
their topics and consumer groups a unique prefix (``topic_prefix``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from stream.kafka.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """The bootstrap address (``127.0.0.1:PORT``) of the session's embedded broker."""
    with EmbeddedBroker() as embedded:
        yield embedded.bootstrap


@pytest.fixture
def own_broker() -> Iterator[str]:
    """The bootstrap address of an embedded broker for this test alone.

    For the tests that compare the worker's rates: the session's broker holds what every
    earlier test produced, and the embedded broker's fetches cost more the more it holds
    (docs/performance.md, "Where it stands"), which then counts in one phase and not another.
    """
    with EmbeddedBroker() as embedded:
        yield embedded.bootstrap


@pytest.fixture
def topic_prefix() -> str:
    """A prefix unique to this test, such as ``t1a2b3c4d5e6.``, for topics and group ids."""
    return f"t{uuid.uuid4().hex[:12]}."
