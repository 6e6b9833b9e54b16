"""The hand-built scenario through the real worker on the embedded broker, in event clock.

Every funnel metric of metrics.md is compared with the value written down by hand in
``tests/stream/core/scenario.py`` (not computed by the core).
"""

from __future__ import annotations

from pathlib import Path

from schemas import REJECT_REASONS
from stream.config.topics import TopicNames
from tests.harness import WorkerProcess, produce, wait_caught_up
from tests.stream.core.scenario import hand_built_scenario


async def test_scenario_every_funnel_metric_as_written_down(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    scenario = hand_built_scenario()
    names = TopicNames.from_prefix(topic_prefix)
    topic = {kind: name for name, kind in names.kinds.items()}
    await produce(broker, [(topic[m.kind], m.key, m.value, m.partition) for m in scenario.messages])
    worker = WorkerProcess(broker, topic_prefix, tmp_path, clock="event").start()
    try:
        worker.wait_ready()
        await wait_caught_up(broker, worker.app_id, names.inputs)
        s = worker.metrics()

        def nonzero(name: str, *labels: str) -> dict[tuple[str, ...], float]:
            return {tuple(found[label] for label in labels): v for found, v in s.series(name) if v}

        assert nonzero("funnel_stage_entries_total", "stage", "source") == {
            k: float(v) for k, v in scenario.stage_entries.items() if v
        }
        assert nonzero("funnel_stage_reentries_total", "stage") == {
            (k,): float(v) for k, v in scenario.stage_reentries.items() if v
        }
        assert nonzero("funnel_window_stage_entries", "stage", "window", "period") == {
            k: float(v) for k, v in scenario.window_entries.items() if v
        }
        for team, latencies in scenario.followup_latencies.items():
            assert s.value("funnel_followup_latency_seconds_count", team=team) == len(latencies)
            assert s.value("funnel_followup_latency_seconds_sum", team=team) == sum(latencies)
        assert nonzero("funnel_followups_total", "team", "within_sla") == {
            k: float(v) for k, v in scenario.followups.items() if v
        }
        assert nonzero("funnel_followup_sla_breaches_total", "team") == {
            (k,): float(v) for k, v in scenario.breaches.items() if v
        }
        assert nonzero("funnel_followup_sla_warnings_total", "team", "before") == {
            k: float(v) for k, v in scenario.warnings.items() if v
        }
        assert nonzero("funnel_leads_at_risk", "team", "before") == {
            k: float(v) for k, v in scenario.at_risk.items() if v
        }
        assert nonzero("funnel_leads_in_stage", "stage") == {
            (k,): float(v) for k, v in scenario.in_stage.items()
        }
        assert nonzero("funnel_leads_stuck", "stage") == {}
        assert nonzero("funnel_stage_time_seconds_count", "from_stage", "to_stage") == {
            k: float(len(v)) for k, v in scenario.stage_times.items()
        }
        assert nonzero("funnel_leads_awaiting_followup", "team") == {
            (k,): float(v) for k, v in scenario.awaiting.items() if v
        }
        assert nonzero("funnel_leads_overdue", "team") == {
            (k,): float(v) for k, v in scenario.overdue.items() if v
        }
        assert nonzero("funnel_oldest_awaiting_followup_timestamp_seconds", "team") == {
            (k,): v for k, v in scenario.oldest_open.items() if v
        }
        assert nonzero("funnel_followup_clock_skew_total", "team") == {
            (k,): float(v) for k, v in scenario.clock_skew.items() if v
        }
        for kind, name in topic.items():
            assert s.value("funnel_events_consumed_total", topic=name) == scenario.consumed.get(
                kind, 0
            )
            assert s.value("funnel_events_applied_total", topic=name) == scenario.applied.get(
                kind, 0
            )
            assert s.value("funnel_events_duplicate_total", topic=name) == scenario.duplicate.get(
                kind, 0
            )
            for reason in REJECT_REASONS:
                want = scenario.rejected.get((kind, reason), 0)
                got = s.value("funnel_events_rejected_total", topic=name, reason=reason)
                assert got == want, (kind, reason)
    finally:
        worker.stop()


async def test_scenario_gauges_as_written_down_after_kill_9(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The first half of the scenario, ``kill -9`` (nothing flushed or committed on the way
    out), a new process on the same state, the second half: every gauge is the hand-written
    one (counters restart with the process, so only the gauges are compared)."""
    scenario = hand_built_scenario()
    names = TopicNames.from_prefix(topic_prefix)
    topic = {kind: name for name, kind in names.kinds.items()}
    sent = [(topic[m.kind], m.key, m.value, m.partition) for m in scenario.messages]
    half = len(sent) // 2
    await produce(broker, sent[:half])
    worker = WorkerProcess(broker, topic_prefix, tmp_path, clock="event").start()
    try:
        worker.wait_ready()
        await wait_caught_up(broker, worker.app_id, names.inputs)
        worker.kill()
        worker = WorkerProcess(broker, topic_prefix, tmp_path, clock="event").start()
        worker.wait_ready(timeout=60)
        await produce(broker, sent[half:])
        await wait_caught_up(broker, worker.app_id, names.inputs)
        s = worker.metrics()
    finally:
        worker.stop()

    def nonzero(name: str, *labels: str) -> dict[tuple[str, ...], float]:
        return {tuple(found[label] for label in labels): v for found, v in s.series(name) if v}

    assert nonzero("funnel_window_stage_entries", "stage", "window", "period") == {
        k: float(v) for k, v in scenario.window_entries.items() if v
    }
    assert nonzero("funnel_leads_awaiting_followup", "team") == {
        (k,): float(v) for k, v in scenario.awaiting.items() if v
    }
    assert nonzero("funnel_leads_overdue", "team") == {
        (k,): float(v) for k, v in scenario.overdue.items() if v
    }
    assert nonzero("funnel_leads_at_risk", "team", "before") == {
        k: float(v) for k, v in scenario.at_risk.items() if v
    }
    assert nonzero("funnel_oldest_awaiting_followup_timestamp_seconds", "team") == {
        (k,): v for k, v in scenario.oldest_open.items() if v
    }
    assert nonzero("funnel_leads_in_stage", "stage") == {
        (k,): float(v) for k, v in scenario.in_stage.items()
    }
