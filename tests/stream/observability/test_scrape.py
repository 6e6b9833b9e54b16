"""Reading /metrics: sums over matching series and PromQL-style histogram quantiles."""

from __future__ import annotations

import http.server
import json
import math
import socket
import threading
from collections.abc import Iterator

import pytest

from stream import formats
from stream.observability.scrape import (
    ScrapeError,
    StageRow,
    TeamRow,
    fetch_json,
    fetch_metrics,
    fetch_status,
    parse_metrics,
    summarize,
)

EXPOSITION = """\
# HELP funnel_stage_entries_total First entries into a stage.
# TYPE funnel_stage_entries_total counter
funnel_stage_entries_total{source="organic",stage="visit"} 70.0
funnel_stage_entries_total{source="direct",stage="visit"} 30.0
funnel_stage_entries_total{source="organic",stage="lead"} 3.0
# HELP funnel_window_stage_entries Exact event-time entries.
# TYPE funnel_window_stage_entries gauge
funnel_window_stage_entries{period="current",stage="visit",window="1d"} 42.0
funnel_window_stage_entries{period="previous",stage="visit",window="1d"} 58.0
funnel_window_stage_entries{period="current",stage="visit",window="1h"} 5.0
# HELP funnel_followup_latency_seconds Lead to first follow-up.
# TYPE funnel_followup_latency_seconds histogram
funnel_followup_latency_seconds_bucket{le="60.0",team="a"} 2.0
funnel_followup_latency_seconds_bucket{le="300.0",team="a"} 6.0
funnel_followup_latency_seconds_bucket{le="900.0",team="a"} 10.0
funnel_followup_latency_seconds_bucket{le="+Inf",team="a"} 10.0
funnel_followup_latency_seconds_count{team="a"} 10.0
funnel_followup_latency_seconds_sum{team="a"} 2000.0
funnel_followup_latency_seconds_bucket{le="60.0",team="b"} 0.0
funnel_followup_latency_seconds_bucket{le="300.0",team="b"} 0.0
funnel_followup_latency_seconds_bucket{le="900.0",team="b"} 4.0
funnel_followup_latency_seconds_bucket{le="+Inf",team="b"} 8.0
funnel_followup_latency_seconds_count{team="b"} 8.0
funnel_followup_latency_seconds_sum{team="b"} 9000.0
funnel_followup_latency_seconds_bucket{le="60.0",team="c"} 0.0
funnel_followup_latency_seconds_bucket{le="300.0",team="c"} 0.0
funnel_followup_latency_seconds_bucket{le="900.0",team="c"} 0.0
funnel_followup_latency_seconds_bucket{le="+Inf",team="c"} 0.0
funnel_followup_latency_seconds_count{team="c"} 0.0
funnel_followup_latency_seconds_sum{team="c"} 0.0
# HELP funnel_followups_total Follow-ups, split by whether they met the SLA.
# TYPE funnel_followups_total counter
funnel_followups_total{team="a",within_sla="true"} 7.0
funnel_followups_total{team="a",within_sla="false"} 3.0
funnel_followups_total{team="b",within_sla="true"} 2.0
funnel_followups_total{team="b",within_sla="false"} 6.0
funnel_followups_total{team="c",within_sla="true"} 0.0
funnel_followups_total{team="c",within_sla="false"} 0.0
# HELP funnel_leads_awaiting_followup Open leads whose clock runs.
# TYPE funnel_leads_awaiting_followup gauge
funnel_leads_awaiting_followup{team="a"} 0.0
funnel_leads_awaiting_followup{team="b"} 5.0
funnel_leads_awaiting_followup{team="c"} 0.0
funnel_leads_awaiting_followup{team="d"} 1.0
# HELP funnel_leads_overdue Open leads past their deadline.
# TYPE funnel_leads_overdue gauge
funnel_leads_overdue{team="b"} 2.0
# HELP funnel_leads_at_risk Open leads not overdue with at most `before` left.
# TYPE funnel_leads_at_risk gauge
funnel_leads_at_risk{before="90m",team="b"} 2.0
funnel_leads_at_risk{before="4h",team="b"} 3.0
funnel_leads_at_risk{before="4h",team="d"} 1.0
funnel_leads_at_risk{before="30m",team="b"} 1.0
# HELP funnel_events_consumed_total Messages read from input topics.
# TYPE funnel_events_consumed_total counter
funnel_events_consumed_total{topic="funnel.visits"} 110.0
funnel_events_consumed_total{topic="funnel.leads"} 12.0
# HELP funnel_events_applied_total Messages that changed state.
# TYPE funnel_events_applied_total counter
funnel_events_applied_total{topic="funnel.visits"} 100.0
funnel_events_applied_total{topic="funnel.leads"} 10.0
# HELP funnel_consumer_lag_messages Lag.
# TYPE funnel_consumer_lag_messages gauge
funnel_consumer_lag_messages{partition="0",topic="funnel.visits"} 4.0
funnel_consumer_lag_messages{partition="1",topic="funnel.visits"} 3.0
"""

samples = parse_metrics(EXPOSITION)
LEADS = {"scope": "local", "status": "awaiting", "partitions": [0], "leads": []}
LATENCY = "funnel_followup_latency_seconds"


def test_value_sums_the_series_that_match_the_labels() -> None:
    assert samples.value("funnel_stage_entries_total") == 103.0
    assert samples.value("funnel_stage_entries_total", stage="visit") == 100.0
    assert samples.value("funnel_stage_entries_total", stage="visit", source="direct") == 30.0
    assert samples.value("funnel_window_stage_entries", window="1d", period="current") == 42.0
    assert samples.value(f"{LATENCY}_count", team="b") == 8.0


def test_value_is_zero_when_nothing_matches() -> None:
    assert samples.value("funnel_stage_entries_total", stage="customer") == 0.0
    assert samples.value("funnel_no_such_metric_total") == 0.0
    assert samples.value("funnel_stage_entries_total", campaign="x") == 0.0


def test_series_lists_labels_and_values() -> None:
    assert samples.series("funnel_stage_entries_total") == [
        ({"source": "organic", "stage": "visit"}, 70.0),
        ({"source": "direct", "stage": "visit"}, 30.0),
        ({"source": "organic", "stage": "lead"}, 3.0),
    ]
    assert samples.series("funnel_absent") == []
    assert "funnel_followup_latency_seconds_bucket" in samples.names()


def test_series_returns_copies() -> None:
    labels, _ = samples.series("funnel_stage_entries_total")[0]
    labels["stage"] = "changed"
    assert samples.value("funnel_stage_entries_total", stage="visit") == 100.0


@pytest.mark.parametrize(
    ("q", "team", "expected"),
    [
        # team a: 2 ≤ 60 s, 4 in (60, 300], 4 in (300, 900]
        (0.1, "a", 30.0),  # rank 1 in the first bucket, interpolated from 0: 60 * 1/2
        (0.5, "a", 240.0),  # rank 5: 60 + 240 * (5 - 2) / 4
        (0.95, "a", 825.0),  # rank 9.5: 300 + 600 * (9.5 - 6) / 4
        (1.0, "a", 900.0),
        (0.0, "a", 0.0),
        # team b: 4 in (300, 900], 4 above the highest finite bound
        (0.5, "b", 900.0),  # rank 4: 300 + 600 * 4 / 4
        (0.95, "b", 900.0),  # rank 7.6 in +Inf: the highest finite bound
    ],
)
def test_histogram_quantile_interpolates_like_promql(q: float, team: str, expected: float) -> None:
    assert samples.histogram_quantile(q, LATENCY, team=team) == pytest.approx(expected)


def test_histogram_quantile_sums_buckets_over_series() -> None:
    # a + b + c: 2 ≤ 60, 6 ≤ 300, 14 ≤ 900, 18 in all; rank 9 → 300 + 600 * (9 - 6) / 8
    assert samples.histogram_quantile(0.5, LATENCY) == pytest.approx(525.0)


def test_histogram_quantile_is_none_without_observations() -> None:
    assert samples.histogram_quantile(0.5, LATENCY, team="c") is None
    assert samples.histogram_quantile(0.5, LATENCY, team="nobody") is None
    assert samples.histogram_quantile(0.5, "funnel_absent_seconds") is None
    assert samples.histogram_quantile(math.nan, LATENCY, team="a") is None


def test_histogram_quantile_outside_zero_one_is_infinite() -> None:
    assert samples.histogram_quantile(-0.1, LATENCY, team="a") == -math.inf
    assert samples.histogram_quantile(1.1, LATENCY, team="a") == math.inf


def test_histogram_quantile_needs_an_inf_bucket() -> None:
    text = (
        "# TYPE x_seconds histogram\n"
        'x_seconds_bucket{le="1.0"} 3.0\n'
        'x_seconds_bucket{le="2.0"} 4.0\n'
        "x_seconds_count 4.0\n"
        "x_seconds_sum 5.0\n"
    )
    assert parse_metrics(text).histogram_quantile(0.5, "x_seconds") is None


def test_summarize_gives_stages_in_order_with_conversion() -> None:
    summary = summarize(samples, ("visit", "lead", "mql"), "1d")
    assert summary.stages == (
        StageRow("visit", 100.0, None, 42.0),
        StageRow("lead", 3.0, 0.03, 0.0),
        StageRow("mql", 0.0, 0.0, 0.0),
    )
    assert summary.stage_cells() == [
        ["stage", "entries", "conversion", "today"],
        ["visit", "100", "-", "42"],
        ["lead", "3", "3.0 %", "0"],
        ["mql", "0", "0.0 %", "0"],
    ]
    assert summarize(samples, ("visit",), "1h").stages[0].in_window == 5.0


def test_summarize_gives_teams_with_activity_and_pipeline_totals() -> None:
    summary = summarize(samples, ("visit",))
    assert summary.teams == (
        TeamRow("a", 10.0, 240.0, 825.0, 0.7, 0.0, 0.0, 0.0),
        TeamRow("b", 8.0, 900.0, 900.0, 0.25, 5.0, 3.0, 2.0),
        TeamRow("d", 0.0, None, None, None, 1.0, 1.0, 0.0),  # c: nothing followed up, none open
    )
    assert summary.team_cells() == [
        ["team", "follow-ups", "p50", "p95", "within SLA", "awaiting", "at risk ≤4h", "overdue"],
        ["a", "10", "4.0m", "13.8m", "70.0 %", "0", "0", "0"],
        ["b", "8", "15.0m", "15.0m", "25.0 %", "5", "3", "2"],
        ["d", "0", "-", "-", "-", "1", "1", "0"],
    ]
    assert summary.events == {
        "consumed": 122.0,
        "applied": 110.0,
        "duplicate": 0.0,
        "rejected": 0.0,
        "lag": 7.0,
    }
    assert summary.events_line().startswith("consumed 122 · applied 110 · duplicate 0")


def test_the_at_risk_column_counts_the_earliest_warning() -> None:
    # 4h is the largest duration, though "90m" sorts after it as text.
    assert summarize(samples, ("visit",)).at_risk_before == "4h"


def test_without_a_warning_there_is_no_at_risk_column() -> None:
    lines = EXPOSITION.splitlines(keepends=True)
    text = "".join(line for line in lines if "funnel_leads_at_risk" not in line)
    summary = summarize(parse_metrics(text), ("visit",))
    assert summary.at_risk_before is None
    assert summary.team_cells()[0] == [
        *("team", "follow-ups", "p50", "p95", "within SLA", "awaiting", "overdue"),
    ]
    assert summary.team_cells()[2] == ["b", "8", "15.0m", "15.0m", "25.0 %", "5", "2"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (42.4, "42s"),
        (60.0, "1.0m"),
        (750.0, "12.5m"),
        (10800.0, "3.0h"),
        (129600.0, "1.5d"),
    ],
)
def test_seconds_uses_the_largest_unit(seconds: float | None, text: str) -> None:
    assert formats.seconds(seconds) == text


def test_bad_text_is_a_scrape_error() -> None:
    with pytest.raises(ScrapeError, match="not Prometheus text format"):
        parse_metrics("funnel_stage_entries_total{stage=visit 1\n")


@pytest.fixture
def metrics_server() -> Iterator[str]:
    """A local HTTP server answering /metrics with EXPOSITION, /leads with LEADS and anything
    else with 503."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, kind = EXPOSITION.encode(), "text/plain; version=0.0.4"
            elif self.path.startswith("/leads?"):
                body, kind = json.dumps(LEADS).encode(), "application/json"
            else:
                self.send_error(503)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_fetch_metrics_reads_an_endpoint(metrics_server: str) -> None:
    scraped = await fetch_metrics(f"{metrics_server}/metrics", timeout=5)
    assert scraped.value("funnel_stage_entries_total", stage="visit") == 100.0
    assert await fetch_status(f"{metrics_server}/health", timeout=5) == 503
    with pytest.raises(ScrapeError, match="answered HTTP 503"):
        await fetch_metrics(f"{metrics_server}/other", timeout=5)


async def test_fetch_json_reads_a_json_view(metrics_server: str) -> None:
    assert await fetch_json(f"{metrics_server}/leads?limit=5", timeout=5) == LEADS
    with pytest.raises(ScrapeError, match="answered HTTP 503"):
        await fetch_json(f"{metrics_server}/other", timeout=5)
    with pytest.raises(ScrapeError, match="something else than JSON"):
        await fetch_json(f"{metrics_server}/metrics", timeout=5)


async def test_fetch_metrics_from_a_closed_port_is_a_scrape_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ScrapeError, match=rf"^cannot reach http://127.0.0.1:{port}/metrics"):
        await fetch_metrics(f"http://127.0.0.1:{port}/metrics", timeout=2)
