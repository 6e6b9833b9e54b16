"""The naive baseline: a Faust agent that writes a table once per event, as tutorials do.

Run as ``python -m bench.naive_app --broker HOST:PORT --topics V,L,T --app-id ID --port N``.
One agent reads the three input topics, decodes each message with the same pydantic
``classify`` as the worker, and counts it per stage in a ``Table`` with Faust's defaults (JSON
values, in-memory store): one table write, so one changelog message, per event. ``/progress``
answers how many events it processed and when it saw the first and the last.

Only what the embedded broker needs to start in seconds is set: the rebalance and session
timeouts and the heartbeat interval, the worker's own (``SESSION_TIMEOUT_S``, imported, so the
two start and rejoin alike), plus the worker's commit interval, so that "every offset
committed" comes as soon for both. Everything else is Faust's default.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any, get_args

import faust

from schemas import Rejection, TopicKind, Visit, classify
from schemas.events import LeadCreated
from stream.config.settings import Settings
from stream.runtime.faustparts import SESSION_TIMEOUT_S

log = logging.getLogger(__name__)


def build_app(
    broker: str, topics: list[str], app_id: str, port: int, data_dir: str
) -> tuple[faust.App, dict[str, float]]:
    """The naive app and its progress record (``processed``, ``first_at``, ``last_at``)."""
    app = faust.App(
        app_id,
        broker=f"kafka://{broker}",
        store="memory://",
        datadir=data_dir,
        web_port=port,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        topic_partitions=8,
        topic_replication_factor=1,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # as the worker sets them (stream.runtime.worker.Worker._create_app)
        broker_rebalance_timeout=SESSION_TIMEOUT_S,
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=SESSION_TIMEOUT_S / 4,
        broker_commit_interval=1.0,
        autodiscover=False,
    )
    kinds: dict[str, TopicKind] = dict(zip(topics, get_args(TopicKind), strict=True))
    stages = frozenset(Settings().funnel.all_stages)
    source = app.topic(
        *topics, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    stage_counts = app.Table("stage_counts", default=int, partitions=8)
    progress = {"processed": 0.0, "first_at": 0.0, "last_at": 0.0}

    @app.agent(source, name="count_stages")
    async def count_stages(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            result = classify(kinds[message.topic], message.key, message.value, stages=stages)
            if isinstance(result, Rejection):
                stage = "rejected"
            elif isinstance(result, Visit):
                stage = "visit"
            elif isinstance(result, LeadCreated):
                stage = "lead"
            else:
                stage = result.to_stage
            stage_counts[stage] += 1
            now = time.time()
            if not progress["processed"]:
                progress["first_at"] = now
            progress["processed"] += 1
            progress["last_at"] = now

    @app.page("/progress")
    async def progress_page(view: Any, request: Any) -> Any:
        return view.json(progress)

    return app, progress


def main() -> int:
    """Parse the arguments and run the naive app until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.naive_app")
    parser.add_argument("--broker", required=True)
    parser.add_argument("--topics", required=True, help="visits,leads,transitions topic names")
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    app, _ = build_app(args.broker, args.topics.split(","), args.app_id, args.port, args.data_dir)
    worker = faust.Worker(app, loglevel="INFO", quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
