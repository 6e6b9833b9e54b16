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
from stream.config.settings import load_settings
from stream.config.topics import TopicNames
from stream.generate import generate_messages
from stream.report import build_report, collect, parse_period
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
    assert page.count("<svg") == 3
    assert "@media print" in page


def test_chromium_shows_the_charts_and_the_key_figures(report: Report, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    shot = tmp_path / "report.png"
    browse(page, f"--screenshot={shot}", "--window-size=1200,3600")
    width, height, colours = png_colours(shot.read_bytes())
    assert (width, height) == (1200, 3600)
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


def test_it_prints(report: Report, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    pdf = tmp_path / "report.pdf"
    browse(page, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page\b", data))
    assert 2 <= pages <= 8
