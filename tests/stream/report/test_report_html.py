"""The HTML report, as a browser shows it: headless Chromium renders it and prints it.

Needs Debian's ``chromium`` (``apt-get install chromium``). The screenshot is checked by
reading its colours with Pillow, so a blank or half-drawn page fails, and the page text must
hold the report's key figures.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import datetime
from html import unescape
from pathlib import Path

import pytest
from PIL import Image

from stream.config.funnel_rules import rules_from_settings
from stream.config.loading import load_settings
from stream.config.topics import TopicNames
from stream.generate import generate_messages
from stream.report import build_report, collect, parse_period
from stream.report.fmt import count, duration, percent
from stream.report.model import Report
from stream.report.recount import InputMessage
from stream.report.render_html import render_html
from tests.stream.core.scenario import hand_built_scenario

START = 1_795_000_000.0  # 2026-11-18T10:13:20Z
END = START + 5 * 86400.0
CONFIG = """
[funnel.definitions]
mql = "Lead from a company of 10+ employees that asked for a demo"
sql = "Sales accepted it after a first call"

[sla]
followup_within = "8h"

[sla.business_hours]
time_zone = "Europe/Madrid"
start = "09:00"
end = "18:00"

[sla.marketing]
mql_per_month = 400
sql_per_month = 100

[north_star]
revenue_goal = 1000000
average_deal_size = 20000

[north_star.conversion]
visit = 0.025
lead = 0.25
mql = 0.35
sql = 0.5
opportunity = 0.25
"""
BLUE, RED, ORANGE = b"\x25\x63\xeb", b"\xdc\x26\x26", b"\xea\x58\x0c"
# The cohort chart's greens, one per later stage: mql, sql, opportunity, customer.
COHORT_GREENS = ((0x06, 0x5F, 0x46), (0x05, 0x96, 0x69), (0x34, 0xD3, 0x99), (0xA7, 0xF3, 0xD0))
WHITE = (255, 255, 255)
PAGE = (1200, 6000)  # tall enough for the whole report


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("headless Chromium is needed: apt-get install -y chromium")
    return path


def browse(page: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    return subprocess.run(
        [chromium(), *flags, "--force-color-profile=srgb", *args, page.as_uri()],
        capture_output=True,
        timeout=60,
        check=True,
    )


def png_colours(data: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and the distinct RGB colours of a PNG screenshot."""
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        rgb = image.convert("RGB")
    width, height = rgb.size
    counted = rgb.getcolors(maxcolors=width * height)
    assert counted is not None
    return width, height, {bytes(colour) for _, colour in counted}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    config = tmp_path_factory.mktemp("config") / "funnel.toml"
    config.write_text(CONFIG)
    settings = load_settings(config, environ={})
    names = TopicNames.from_prefix("html.")
    kinds = names.kinds
    messages = [
        InputMessage(kinds[m.topic], 0, m.key, m.value)
        for m in generate_messages(seed=3, start=START, end=END, count=8000, topics=names)
    ]
    facts = collect(messages, rules_from_settings(settings), clock_mode="wall", now=END + 86400)
    period = parse_period("2026-11-18", "2026-11-24", settings.funnel.time_zone)
    return build_report(facts, settings, period, generated_at=END + 86400)


def test_html_is_one_self_contained_file(report: Report) -> None:
    page = render_html(report)
    # Nothing to fetch: no script, stylesheet, image or font from anywhere.
    assert not re.search(r"<(script|link|img|iframe|object)\b", page)
    assert not re.search(r"(src|href)\s*=|@import|url\(", page)
    # The only URL is the SVG namespace, which is a name, not a fetch.
    assert set(re.findall(r"https?://[^\s\"']+", page)) == {"http://www.w3.org/2000/svg"}
    assert page.count("<svg") == 4
    assert "@media print" in page


def test_chromium_shows_the_charts_and_the_key_figures(report: Report, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    shot = tmp_path / "report.png"
    browse(page, f"--screenshot={shot}", f"--window-size={PAGE[0]},{PAGE[1]}")
    width, height, colours = png_colours(shot.read_bytes())
    assert (width, height) == PAGE
    assert len(colours) > 100  # text, tables and charts, not a blank page
    assert BLUE in colours  # funnel and latency bars
    assert ORANGE in colours  # follow-ups slower than the SLA
    assert RED in colours  # the SLA line and the commitment ticks

    dom = browse(page, "--dump-dom").stdout.decode()
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", dom)).split())
    for heading in ("Agreed definitions", "Marketing → Sales", "Sales → Marketing"):
        assert heading in text
    assert "Lead from a company of 10+ employees that asked for a demo" in text
    # The figures themselves are checked on the hand-built scenario below, where they are
    # written by hand; here, that the page shows them at all.
    assert report.entries["visit"] > 1000 and report.total.followups > 50
    assert re.search(r"visit [\d,]{4,} \d+\.\d %", text), text[:2000]
    assert re.search(r"all teams [\d,]+ [\d,]+ \d+\.\d %", text)
    assert "SLA 8h" in text
    assert re.search(r"mql: [\d,]+ delivered against [\d,]+", text)
    assert report.bottleneck is not None and "Bottleneck: " in text


def test_chromium_shows_the_hand_built_scenarios_figures(tmp_path: Path) -> None:
    """The hand-built scenario (tests/stream/core/scenario.py) over 2026-11-20 and 21, with
    the default settings. Its figures, from the scenario's own hand-written counts: first
    entries visit 4 (v1-v4), lead 8 (H, B, C, E, G, D, F, I), mql 3 (C, H, I), sql 2 (C, E),
    no opportunity; so conversions of 8/4 = 200.0 %, 3/8 = 37.5 %, 2/3 = 66.7 % and 0/2 =
    0.0 %. The 8 leads' clocks all start in the period; 5 were followed up (D, B, F, E, C),
    4 within the SLA (B was late): 80.0 %.
    """
    scenario = hand_built_scenario()
    messages = [InputMessage(m.kind, m.partition, m.key, m.value) for m in scenario.messages]
    settings = load_settings(None, environ={})
    facts = collect(
        messages,
        rules_from_settings(settings),
        clock_mode="event",
        now=datetime.fromisoformat("2026-11-23T00:00:00+00:00").timestamp(),
    )
    period = parse_period("2026-11-20", "2026-11-22", settings.funnel.time_zone)
    built = build_report(facts, settings, period, generated_at=facts.as_of)
    page = tmp_path / "scenario.html"
    page.write_text(render_html(built), encoding="utf-8")
    dom = browse(page, "--dump-dom").stdout.decode()
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", dom)).split())
    for row in (
        "visit 4 200.0 %",
        "lead 8 37.5 %",
        "mql 3 66.7 %",
        "sql 2 0.0 %",
        "all teams 8 5 80.0 %",
    ):
        assert row in text, (row, text[:3000])


def green_pixels(data: bytes) -> dict[tuple[int, int, int], list[tuple[int, int]]]:
    """Where each of the cohort chart's greens is drawn in a PNG screenshot: (x, y) pixels."""
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    wanted = set(COHORT_GREENS)
    found: dict[tuple[int, int, int], list[tuple[int, int]]] = {g: [] for g in COHORT_GREENS}
    width, height = rgb.size
    pixels = rgb.load()
    assert pixels is not None
    for y in range(height):
        for x in range(width):
            colour = pixels[x, y]
            if colour in wanted:
                found[colour].append((x, y))
    return found


def test_chromium_draws_the_cohort_chart(report: Report, tmp_path: Path) -> None:
    first = report.cohorts.rows[0]
    # The generated week: some leads became MQLs, fewer SQLs, none got further in 5 days.
    assert first.leads > 100
    assert first.within_window["mql"] > first.within_window["sql"] > 0
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    shot = tmp_path / "report.png"
    browse(page, f"--screenshot={shot}", f"--window-size={PAGE[0]},{PAGE[1]}")
    data = shot.read_bytes()
    greens = green_pixels(data)
    mql, sql, _, customer = (greens[g] for g in COHORT_GREENS)
    # Every stage is in the legend; the MQL and SQL bars are drawn, the MQL bar the taller.
    assert all(len(found) >= 100 for found in greens.values())  # a 12 px legend square each
    assert len(mql) > 3000 and len(sql) > 1000
    assert min(y for _, y in mql) < min(y for _, y in sql)
    # The chart's region (from the top of the tallest bar to the legend) is drawn on, not blank.
    top = min(y for _, y in mql)
    bottom = max(y for _, y in customer)
    with Image.open(io.BytesIO(data)) as image:
        region = image.convert("RGB").crop((0, top, PAGE[0], bottom + 1))
    counted = region.getcolors(maxcolors=PAGE[0] * (bottom + 1 - top))
    assert counted is not None
    drawn = sum(n for n, colour in counted if colour != WHITE)
    assert drawn > 5000

    dom = browse(page, "--dump-dom").stdout.decode()
    assert "<title>Cohorts: share reaching each stage within 90d</title>" in dom
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", dom)).split())
    assert "How fast leads move" in text and "Time between stages" in text
    assert "share of each cohort's leads reaching the stage within 90d" in text
    assert f"{first.label} *" in text  # the window of this week's leads is still open
    assert "mql sql opportunity customer" in text  # the legend
    mql_share = first.share(first.within_window, "mql")
    assert f"{first.label} * {count(first.leads)} {percent(mql_share)}" in text  # the table
    lead_mql = report.steps[0]
    assert (lead_mql.from_stage, lead_mql.to_stage) == ("lead", "mql") and lead_mql.count > 10
    assert f"lead → mql {count(lead_mql.count)} {duration(lead_mql.p50)}" in text


def test_it_prints(report: Report, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    pdf = tmp_path / "report.pdf"
    browse(page, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page\b", data))
    assert 2 <= pages <= 10
