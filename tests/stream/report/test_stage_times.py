"""``funnel report``'s time between stages and cohorts, against a count made by hand.

Eight leads with stage times chosen so that every rule shows: a skipped stage, a step whose
earlier entry is before the period, a lead just either side of a week boundary in the
business time zone (Madrid, UTC+1 in November), a stage reached after the conversion window,
and a cohort whose window has not ended by the clock. The expectations are worked out below
from the event times, not by the code under test.
"""

from __future__ import annotations

from pathlib import Path

from stream.report.render_json import report_dict
from stream.report.render_md import render_markdown
from tests.stream.report.test_report import change, iso, lead, report_of, settings_from

H, D = 3600.0, 86400.0
CONFIG = """
[funnel]
time_zone = "Europe/Madrid"

[report]
conversion_window = "20d"
"""
# The period is two Madrid weeks: Mon 2 Nov 00:00 (1 Nov 23:00Z) to Mon 16 Nov 00:00
# (15 Nov 23:00Z). The clock (wall mode) is 30 Nov 00:00Z.
NOW = iso("2026-11-30T00:00:00Z")
MESSAGES = [
    # A: every stage; customer after the period.
    lead("A", "2026-11-02T10:00:00Z"),
    change("A", "mql", "2026-11-03T10:00:00Z"),  # lead → mql 1d
    change("A", "sql", "2026-11-05T10:00:00Z"),  # mql → sql 2d
    change("A", "opportunity", "2026-11-09T10:00:00Z"),  # sql → opportunity 4d
    change("A", "customer", "2026-11-19T10:00:00Z"),  # after the period; lead → customer 17d
    # B: 00:30 on Monday 2 Nov in Madrid (Sunday in UTC): the first week. Skips sql.
    lead("B", "2026-11-01T23:30:00Z"),
    change("B", "mql", "2026-11-04T23:30:00Z"),  # lead → mql 3d
    change("B", "opportunity", "2026-11-10T23:30:00Z"),  # mql → opportunity 6d
    # C: an MQL 21 days after becoming a lead, past the 20-day window.
    lead("C", "2026-11-04T12:00:00Z"),
    change("C", "mql", "2026-11-25T12:00:00Z"),
    # D: disqualified, nothing else.
    lead("D", "2026-11-06T08:00:00Z"),
    change("D", "disqualified", "2026-11-07T08:00:00Z"),
    # E: the second week; skips opportunity.
    lead("E", "2026-11-09T09:00:00Z"),
    change("E", "mql", "2026-11-09T15:00:00Z"),  # lead → mql 6h
    change("E", "sql", "2026-11-10T09:00:00Z"),  # mql → sql 18h
    change("E", "customer", "2026-11-12T09:00:00Z"),  # sql → customer 2d; lead → customer 3d
    # F: 23:30 on Sunday 15 Nov in Madrid: the second week; its MQL is after the period.
    lead("F", "2026-11-15T22:30:00Z"),
    change("F", "mql", "2026-11-16T22:30:00Z"),
    # G: 00:30 on Monday 16 Nov in Madrid: after the period, in no cohort.
    lead("G", "2026-11-15T23:30:00Z"),
    change("G", "mql", "2026-11-17T10:00:00Z"),
    # H: a lead from before the period whose MQL is in it (the step counts), its SQL after.
    lead("H", "2026-10-20T10:00:00Z"),
    change("H", "mql", "2026-11-03T10:00:00Z"),  # lead → mql 14d
    change("H", "sql", "2026-11-20T10:00:00Z"),
]

# Steps whose later entry is in the period, by hand (nearest rank: p50 is the ceil(n/2)-th
# smallest, p90 the ceil(0.9 n)-th):
#   lead → mql: E 6h, A 1d, B 3d, H 14d -> p50 the 2nd = 1d, p90 the 4th = 14d,
#               mean (0.25 + 1 + 3 + 14) / 4 = 4.5625d
#   mql → sql: E 18h, A 2d -> p50 the 1st = 18h, p90 the 2nd = 2d, mean 33h
#   mql → opportunity (B skipped sql): 6d
#   sql → opportunity: A 4d
#   sql → customer (E skipped opportunity): 2d
#   opportunity → customer: none (A's customer is after the period)
#   lead → customer, the whole way: E 3d
STEPS = [
    ("lead", "mql", 4, 1 * D, 14 * D, 4.5625 * D),
    ("mql", "sql", 2, 18 * H, 2 * D, 33 * H),
    ("mql", "opportunity", 1, 6 * D, 6 * D, 6 * D),
    ("sql", "opportunity", 1, 4 * D, 4 * D, 4 * D),
    ("sql", "customer", 1, 2 * D, 2 * D, 2 * D),
    ("opportunity", "customer", 0, None, None, None),
    ("lead", "customer", 1, 3 * D, 3 * D, 3 * D),
]

# Cohorts (20-day window; a skipped stage counts as passed when a later one is reached):
#   week of 2026-11-02: A, B, C, D = 4 leads
#     within 20d: mql A B (C's is day 21); sql A B (B's opportunity on day 9);
#                 opportunity A B; customer A (day 17)
#     so far: mql A B C; the rest as within
#     window over: 9 Nov 00:00 Madrid + 20d = 28 Nov 23:00Z, before the clock
#   week of 2026-11-09: E, F = 2 leads (G is after the period, H before it)
#     within 20d and so far: mql E F; sql E; opportunity E (customer on day 3); customer E
#     window open: 16 Nov 00:00 Madrid + 20d = 5 Dec, after the clock
LATER = ["mql", "sql", "opportunity", "customer"]
COHORTS = [
    ("2026-11-02", 4, [2, 2, 2, 1], [3, 2, 2, 1], True),
    ("2026-11-09", 2, [2, 1, 1, 1], [2, 1, 1, 1], False),
]


def test_time_between_stages_and_cohorts_equal_a_count_by_hand(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, CONFIG)
    report = report_of(settings, MESSAGES, "2026-11-02", "2026-11-16", NOW)

    got = [(r.from_stage, r.to_stage, r.count, r.p50, r.p90, r.mean) for r in report.steps]
    assert got == STEPS
    assert [r.whole_way for r in report.steps] == [False] * 6 + [True]

    cohorts = report.cohorts
    assert (cohorts.unit, cohorts.window_seconds, list(cohorts.stages)) == ("week", 20 * D, LATER)
    rows = [
        (
            c.label,
            c.leads,
            [c.within_window[s] for s in LATER],
            [c.so_far[s] for s in LATER],
            c.window_complete,
        )
        for c in cohorts.rows
    ]
    assert rows == COHORTS
    first = cohorts.rows[0]
    assert first.share(first.within_window, "mql") == 0.5
    assert first.share(first.so_far, "mql") == 0.75


def test_json_and_markdown_carry_the_same_numbers(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, CONFIG)
    report = report_of(settings, MESSAGES, "2026-11-02", "2026-11-16", NOW)

    out = report_dict(report)
    lead_mql = out["stage_times"][0]
    assert lead_mql == {
        "from_stage": "lead",
        "to_stage": "mql",
        "whole_way": False,
        "count": 4,
        "p50_seconds": 86400.0,
        "p90_seconds": 14 * 86400.0,
        "mean_seconds": 4.5625 * 86400.0,
    }
    assert out["stage_times"][-1]["whole_way"] is True
    week = out["cohorts"]["rows"][0]
    assert out["cohorts"]["unit"] == "week"
    assert out["cohorts"]["conversion_window_seconds"] == 20 * 86400.0
    assert (week["cohort"], week["leads"], week["window_complete"]) == ("2026-11-02", 4, True)
    assert week["start"] == "2026-11-01T23:00:00Z"
    assert week["within_window"]["mql"] == {"leads": 2, "share": 0.5}
    assert week["so_far"]["mql"] == {"leads": 3, "share": 0.75}
    assert week["within_window"]["customer"] == {"leads": 1, "share": 0.25}
    assert out["cohorts"]["rows"][1]["window_complete"] is False

    text = render_markdown(report)
    assert "## How fast leads move" in text
    assert "| lead → mql | 4 | 1.0d | 14.0d | 4.6d |" in text
    assert "| lead → customer (whole way) | 1 | 3.0d | 3.0d | 3.0d |" in text
    assert "| week of | leads | mql in 20d | mql so far |" in text
    assert "| 2026-11-02 | 4 | 50.0 % | 75.0 % | 50.0 % | 50.0 % |" in text
    assert "| 2026-11-09 * | 2 | 100.0 % | 100.0 % | 50.0 % |" in text


def test_periods_over_13_weeks_have_monthly_cohorts(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, CONFIG)
    report = report_of(settings, MESSAGES, "2026-10-01", "2027-01-01", NOW)
    cohorts = report.cohorts
    assert cohorts.unit == "month"
    # October: H; November: A to G (G's 00:30 on 16 Nov is in November too).
    assert [(c.label, c.leads) for c in cohorts.rows] == [
        ("2026-10", 1),
        ("2026-11", 7),
        ("2026-12", 0),
    ]
    # H reached mql on day 14 and sql on day 31: within 20 days only the MQL.
    october = cohorts.rows[0]
    assert (october.within_window["mql"], october.within_window["sql"]) == (1, 0)
    assert (october.so_far["mql"], october.so_far["sql"]) == (1, 1)


def test_13_weeks_across_a_clock_change_are_still_weeks(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, CONFIG)
    # 7 Sep to 7 Dec is 13 weeks of Madrid days, and one hour more: summer time ends 25 Oct.
    report = report_of(settings, MESSAGES, "2026-09-07", "2026-12-07", NOW)
    cohorts = report.cohorts
    assert cohorts.unit == "week"
    assert [c.label for c in cohorts.rows][::4] == [
        "2026-09-07",
        "2026-10-05",
        "2026-11-02",
        "2026-11-30",
    ]
    assert len(cohorts.rows) == 13
    # H (20 Oct), then A-D, E-F, G (16 Nov in Madrid); 30 Nov is the last, open, week.
    by_week = {c.label: c.leads for c in cohorts.rows if c.leads}
    assert by_week == {"2026-10-19": 1, "2026-11-02": 4, "2026-11-09": 2, "2026-11-16": 1}
