"""``GET /leads``: the open leads behind the gauges, for this worker or for the whole group.

A worker answers for the lead partitions it owns (``scope=local``, the default) from its
partition views (``stream.core.leadlist``). With ``scope=group`` it asks every member of the
consumer group for theirs and merges the answers. Members find each other in the assignment
Faust shares with the whole group: each member's web URL (``canonical_url``, sent in its
member metadata) with the changelog partitions of ``lead_states`` it owns, which are its lead
partitions. The merged answer holds each lead exactly once, or is refused: the partitions the
members answered for must be exactly those the assignment gives them, disjoint and covering
every partition; otherwise (a rebalance under way, a member not recovered yet or not
reachable) the answer is 503 with ``Retry-After``, never a list with leads doubled or missing.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from stream.core.funnel import Funnel
from stream.core.leadlist import (
    DEFAULT_LIMIT,
    LEAD_LIST_STATUSES,
    MAX_LIMIT,
    LeadListStatus,
    list_leads,
)

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1
PEER_TIMEOUT_S = 5.0
SCOPES = ("local", "group")


class LeadsUnavailable(Exception):
    """The answer cannot be exact now (a rebalance, a member not ready): retry shortly."""


@dataclass(frozen=True, slots=True)
class LeadQuery:
    """The filters of ``/leads`` and ``funnel leads``."""

    status: LeadListStatus = "awaiting"
    team: str | None = None
    owner: str | None = None
    before: str | None = None
    limit: int = DEFAULT_LIMIT
    scope: str = "local"
    stage: str | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> LeadQuery:
        """The query of a request; ``ValueError`` with a one-line reason when it is bad."""
        status = query.get("status", "awaiting")
        if status not in LEAD_LIST_STATUSES:
            raise ValueError(f"status must be one of {', '.join(LEAD_LIST_STATUSES)}")
        scope = query.get("scope", "local")
        if scope not in SCOPES:
            raise ValueError("scope must be local or group")
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
        except ValueError:
            raise ValueError("limit must be a whole number") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        return cls(
            status,  # checked against LEAD_LIST_STATUSES above
            query.get("team") or None,
            query.get("owner") or None,
            query.get("before") or None,
            limit,
            scope,
            query.get("stage") or None,
        )

    def params(self, scope: str) -> dict[str, str]:
        """The query string of this query for ``scope``."""
        out = {"status": self.status, "limit": str(self.limit), "scope": scope}
        for name in ("team", "owner", "before", "stage"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


class GroupMember(Protocol):
    """What ``/leads`` needs of the worker (``stream.runtime.worker.Worker``)."""

    funnel: Funnel

    def lead_list_ready(self) -> bool: ...

    def lead_partitions_by_member(self) -> dict[str, set[int]]: ...

    @property
    def own_url(self) -> str: ...

    @property
    def partition_count(self) -> int: ...


def local_answer(worker: GroupMember, query: LeadQuery) -> dict[str, Any]:
    """This worker's leads; ``LeadsUnavailable`` while it is not ready or rebalancing."""
    if not worker.lead_list_ready():
        raise LeadsUnavailable("this worker is rebalancing or recovering")
    partitions = sorted(p for kind, p in worker.funnel.views if kind == "leads")
    rows = list_leads(
        worker.funnel,
        query.status,
        team=query.team,
        owner=query.owner,
        before=query.before,
        stage=query.stage,
        limit=query.limit,
    )
    return {
        "scope": "local",
        "status": query.status,
        "partitions": partitions,
        "leads": [row.as_json() for row in rows],
    }


async def group_answer(worker: GroupMember, query: LeadQuery) -> dict[str, Any]:
    """Every member's leads merged, each once; ``LeadsUnavailable`` when that cannot be."""
    members = worker.lead_partitions_by_member()
    everyone = [p for parts in members.values() for p in parts]
    if sorted(everyone) != list(range(worker.partition_count)):
        raise LeadsUnavailable("the group's assignment does not cover every partition once")
    own = worker.own_url
    timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def ask(url: str) -> dict[str, Any]:
            if url == own:
                return local_answer(worker, query)
            return await _ask_peer(session, url, query)

        urls = [url for url, parts in members.items() if parts]
        answers = await asyncio.gather(*(ask(url) for url in urls))
    leads: list[dict[str, Any]] = []
    for url, answer in zip(urls, answers, strict=True):
        if set(answer["partitions"]) != members[url]:
            raise LeadsUnavailable("a member answered for other partitions than assigned")
        leads.extend(answer["leads"])
    leads.sort(key=lambda lead: (lead["deadline"], lead["lead_id"]))
    return {
        "scope": "group",
        "status": query.status,
        "partitions": sorted(everyone),
        "leads": leads[: query.limit],
    }


async def _ask_peer(session: aiohttp.ClientSession, url: str, query: LeadQuery) -> dict[str, Any]:
    try:
        async with session.get(f"{url.rstrip('/')}/leads", params=query.params("local")) as got:
            if got.status != 200:
                raise LeadsUnavailable(f"a member answered {got.status}")
            answer: dict[str, Any] = await got.json()
            return answer
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("lead list: member unreachable url=%s error=%s", url, type(exc).__name__)
        raise LeadsUnavailable("a member of the group is unreachable") from None


def advertised_url(web_bind: str, web_port: int) -> str:
    """The URL the other members reach this worker's web port at.

    Bound to every interface (containers), the address of this host's name; else the address
    it is bound to.
    """
    host = web_bind
    if web_bind in ("0.0.0.0", "::", ""):
        try:
            host = socket.gethostbyname(socket.gethostname())
        except OSError:
            host = "127.0.0.1"
    return f"http://{host}:{web_port}"
