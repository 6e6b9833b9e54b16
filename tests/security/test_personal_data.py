"""Personal data in events goes nowhere: not in logs, metrics, dead-letter headers or state.

The one identifier of a person the worker keeps is ``owner``, the sales rep's pseudonymous id:
it is stored in the lead's state (to list a rep's leads and credit follow-ups), and still never
logged, never a metric label and never in a dead-letter header.

Events carry identifiers, not personal data (events.md), but a producer may add fields such as
``email`` or ``phone`` anyway. Unknown fields are accepted and ignored: never stored, logged or
used as labels. This test sends such fields with distinctive values, in valid, duplicate and
rejected messages, then searches everything the worker wrote for them. A positive control (a
value the worker does store) shows each search would have found a stored value.

The dead-letter *value* is the original message, bytes for bytes, by design (events.md: the
spec requires the original bytes so a fixed consumer can replay them); docs/security.md says
who may read that topic. Only its headers are the worker's own words, and those are checked.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.request
from pathlib import Path

from stream.config.topics import TopicNames, changelog_topics
from stream.kafka.offsets import read_topic
from tests.reliability.support import (
    START,
    Message,
    WorkerProcess,
    change,
    closing_events,
    dead_letters,
    lead,
    produce,
    visit,
    wait_caught_up,
)

EMAIL = "pd.jane.roe.7f3a9c@leak-check.example"
PHONE = "+44-7700-900-4711"
OWNER = "rep-pd-5e1d0b"  # a sales rep id: stored with the lead, never logged, never a label
SECRETS = (EMAIL, PHONE, OWNER)
NOT_STORED = (EMAIL, PHONE)
STORED_SOURCE = "stored-source-c0ffee"  # the control: the lead's source is part of its state
PERSONAL = {"email": EMAIL, "phone": PHONE, "contact": {"email": EMAIL, "phone": [PHONE]}}


def messages(names: TopicNames) -> list[Message]:
    """Valid, duplicate and rejected messages that all carry the personal fields."""
    out: list[Message] = []
    for i in range(200):
        t = START + i * 60.0
        lid, vid = f"pd-lead-{i}", f"pd-visitor-{i}"
        out.append(visit(names, f"pv{i}", vid, t, **PERSONAL))
        out.append(visit(names, f"pv{i}", vid, t, **PERSONAL))  # a duplicate
        out.append(lead(names, f"pl{i}", lid, t, source=STORED_SOURCE, owner=OWNER, **PERSONAL))
        out.append(change(names, f"pc{i}", lid, "contacted", t + 600, owner=OWNER, **PERSONAL))
        # Rejected, one per reason.
        naive = json.loads(visit(names, f"px{i}", vid, t, **PERSONAL)[2] or b"")
        naive["occurred_at"] = naive["occurred_at"].rstrip("Z")
        out.append((names.visits, vid.encode(), json.dumps(naive).encode(), None))
        whole = lead(names, f"pj{i}", lid, t, **PERSONAL)[2] or b""
        out.append((names.leads, lid.encode(), whole[: whole.index(b"phone") + 12], None))
        out.append(
            (names.leads, b"someone-else", lead(names, f"pk{i}", lid, t, **PERSONAL)[2], None)
        )
        out.append(change(names, f"pu{i}", lid, "nirvana", t, owner=OWNER, **PERSONAL))
        wrong = lead(names, f"pw{i}", lid, t, **PERSONAL)
        out.append((names.transitions, wrong[1], wrong[2], None))
        future = change(names, f"pf{i}", lid, "mql", 4_000_000_000.0, owner=OWNER, **PERSONAL)
        out.append(future)
        # Still open (on the lead list): one with the rep, one with no owner.
        out.append(lead(names, f"po{i}", f"pd-open-{i}", t, owner=OWNER, **PERSONAL))
        out.append(lead(names, f"pn{i}", f"pd-ownerless-{i}", t, **PERSONAL))
    return out


def found_in(data: bytes, needles: tuple[str, ...]) -> set[str]:
    """The needles present in ``data`` (as UTF-8 or JSON-escaped text)."""
    return {n for n in needles if n.encode() in data or json.dumps(n).encode()[1:-1] in data}


def listening_on(port: int) -> set[str]:
    """The local addresses with a socket listening on TCP ``port`` (from /proc/net/tcp*)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if len(raw) == 4:  # IPv4, little-endian
                    found.add(str(ipaddress.IPv4Address(raw[::-1])))
                else:  # IPv6, four little-endian words
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.add(str(ipaddress.IPv6Address(words)))
    return found


async def test_personal_fields_never_leave_the_message(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    await produce(broker, messages(names) + closing_events(names))
    state = tmp_path / "state"
    worker = WorkerProcess(broker, topic_prefix, state)
    try:
        worker.start().wait_ready(timeout=60)
        await wait_caught_up(broker, worker.app_id, names.inputs)
        metrics = worker.metrics_text().encode()
        samples = worker.metrics()
        with urllib.request.urlopen(worker.url("/leads?limit=1000")) as got:
            lead_list = got.read()
        # Nor is /metrics served beyond this host by default (FUNNEL_WEB_BIND).
        assert listening_on(worker.port) == {"127.0.0.1"}
    finally:
        assert worker.stop() == 0  # a clean stop flushes the stores to their files
    # Everything arrived: 200 of each rejected kind, and the valid ones applied.
    assert samples.value("funnel_events_rejected_total") == 6 * 200
    assert samples.value("funnel_events_duplicate_total") == 200

    assert found_in(metrics, SECRETS) == set()
    # The lead list shows ids, teams and owners (the rep's pseudonymous id is its point),
    # never a personal field; a lead without an owner shows none.
    assert found_in(lead_list, NOT_STORED) == set()
    rows = {row["lead_id"]: row for row in json.loads(lead_list)["leads"]}
    assert rows["pd-open-7"]["owner"] == OWNER  # the control: the list does show the owner
    assert rows["pd-ownerless-7"]["owner"] is None
    log = worker.log_path.read_bytes()
    assert found_in(log, SECRETS) == set()
    assert b"rejected topic=" in log  # rejections are logged, without their payload

    letters = await dead_letters(broker, names)
    assert len(letters) == 6 * 200
    for letter in letters:
        headers = b"\n".join(letter.headers.values())
        assert found_in(headers, SECRETS) == set()
        assert set(letter.headers) == {
            "source_topic",
            "source_partition",
            "source_offset",
            "reason",
        }
    # By design the value is the original message (events.md), personal fields and all.
    assert any(EMAIL.encode() in (letter.value or b"") for letter in letters)

    # State: the store files on disk and the changelog topics behind them.
    files = [p for p in state.rglob("*") if p.is_file() and p != worker.log_path]
    on_disk = b"".join(p.read_bytes() for p in files)
    assert found_in(on_disk, (STORED_SOURCE, "pd-lead-7")) == {STORED_SOURCE, "pd-lead-7"}
    assert found_in(on_disk, NOT_STORED) == set()
    for topic in changelog_topics(worker.app_id):
        records = await read_topic(broker, topic, timeout=30)
        stored = b"\n".join((r.key or b"") + b"=" + (r.value or b"") for r in records)
        assert found_in(stored, NOT_STORED) == set()
        if "lead_states" in topic:
            # The owner is part of the lead's state (docs/security.md), as the source is.
            assert found_in(stored, (STORED_SOURCE, OWNER)) == {STORED_SOURCE, OWNER}
