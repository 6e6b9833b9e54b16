"""Inline SVG charts for the HTML report: no script, no external asset, printable.

Each function returns one ``<svg>`` element as text, sized by its ``viewBox`` so it scales
with the page, with a ``<title>`` for screen readers and the exact figures as labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from stream.core.durations import format_duration
from stream.report.cohorts import Cohorts
from stream.report.fmt import bucket_label, count, percent
from stream.report.model import Commitment, StageRow

__all__ = ["cohort_chart", "deliveries_chart", "funnel_chart", "latency_chart"]

WIDTH = 720
BLUE = "#2563eb"
PALE = "#93c5fd"
ORANGE = "#ea580c"
RED = "#dc2626"
GREY = "#475569"
STAGE_COLOURS = ("#1e3a8a", "#1d4ed8", "#2563eb", "#3b82f6", "#60a5fa", "#93c5fd")
# Cohorts: one green per later stage, darkest first, apart from the blues of the entries.
COHORT_COLOURS = ("#065f46", "#059669", "#34d399", "#a7f3d0")


def _svg(height: float, title: str, body: Sequence[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'role="img" class="chart"><title>{escape(title)}</title>' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def funnel_chart(rows: Sequence[StageRow]) -> str:
    """The funnel: one centred bar per stage (length on a log scale, exact count as label)
    and the conversion from each stage to the next between the bars."""
    bar, step, label_w = 30, 54, 130
    span = WIDTH - label_w - 20
    top = max((row.entries for row in rows), default=0)
    scale = math.log10(top + 1) or 1.0
    body: list[str] = []
    y = 10.0
    for index, row in enumerate(rows):
        width = max(3.0, span * math.log10(row.entries + 1) / scale)
        x = label_w + (span - width) / 2
        colour = STAGE_COLOURS[min(index, len(STAGE_COLOURS) - 1)]
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{bar}" '
            f'fill="{colour}" rx="3"/>'
        )
        body.append(_text(label_w - 10, y + bar / 2 + 5, row.stage, anchor="end"))
        light = index < 3 and width > 80
        body.append(
            _text(
                label_w + span / 2,
                y + bar / 2 + 5,
                count(row.entries),
                anchor="middle",
                extra=f' font-weight="bold" fill="{"#fff" if light else "#111"}"',
            )
        )
        if index < len(rows) - 1:
            body.append(
                _text(
                    label_w + span / 2,
                    y + bar + 17,
                    f"↓ {percent(row.conversion)}",
                    anchor="middle",
                    extra=f' fill="{GREY}" font-size="13"',
                )
            )
        y += step
    body.append(
        _text(WIDTH - 10, y + 4, "bar length on a log scale", anchor="end", extra=' fill="#666"')
    )
    return _svg(y + 12, "Entries per stage and conversion between stages", body)


def _sla_x(sla: float, bounds: Sequence[float], x0: float, slot: float) -> float:
    """Where ``sla`` falls on the bucket axis (log-interpolated inside its bucket)."""
    lower = 0.0
    for index, upper in enumerate(bounds):
        if sla <= upper:
            if math.isinf(upper):
                fraction = 0.5
            elif lower == 0:
                fraction = sla / upper
            else:
                fraction = math.log(sla / lower) / math.log(upper / lower)
            return x0 + (index + fraction) * slot
        lower = upper
    return x0 + len(bounds) * slot


def latency_chart(buckets: Sequence[tuple[float, int]], sla: float, judged: str) -> str:
    """Follow-ups per latency bucket, with the SLA as a dashed red line."""
    height, x0, bottom, top_pad = 260, 50, 210, 24
    slot = (WIDTH - x0 - 10) / max(1, len(buckets))
    peak = max((n for _, n in buckets), default=0) or 1
    body = [
        f'<line x1="{x0}" y1="{bottom}" x2="{WIDTH - 10}" y2="{bottom}" stroke="{GREY}"/>',
        _text(x0 - 6, top_pad + 4, count(peak), anchor="end", extra=' font-size="12"'),
        _text(x0 - 6, bottom, "0", anchor="end", extra=' font-size="12"'),
    ]
    for index, (bound, n) in enumerate(buckets):
        h = (bottom - top_pad) * n / peak
        x = x0 + index * slot
        fill = BLUE if bound <= sla else ORANGE
        body.append(
            f'<rect x="{x + 3:.1f}" y="{bottom - h:.1f}" width="{slot - 6:.1f}" '
            f'height="{h:.1f}" fill="{fill}"/>'
        )
        if n:
            body.append(
                _text(
                    x + slot / 2, bottom - h - 4, count(n), anchor="middle", extra=' font-size="11"'
                )
            )
        body.append(
            _text(
                x + slot / 2,
                bottom + 16,
                bucket_label(bound),
                anchor="middle",
                extra=' font-size="11"',
            )
        )
    line_x = _sla_x(sla, [b for b, _ in buckets], x0, slot)
    body.append(
        f'<line x1="{line_x:.1f}" y1="{top_pad - 10}" x2="{line_x:.1f}" y2="{bottom}" '
        f'stroke="{RED}" stroke-width="2.5" stroke-dasharray="6 4"/>'
    )
    body.append(
        _text(
            line_x - 4,
            top_pad - 12,
            f"SLA {format_duration(sla)}",
            anchor="end",
            extra=f' fill="{RED}" font-weight="bold"',
        )
    )
    body.append(
        _text(
            x0,
            height - 12,
            f"follow-ups by {judged} latency (blue: within the SLA)",
            extra=' fill="#666"',
        )
    )
    return _svg(height, "Follow-up latency distribution with the SLA", body)


def deliveries_chart(commitments: Sequence[Commitment]) -> str:
    """Per month, each committed stage's deliveries (bars) against its commitment (a tick)."""
    months = [month for month, _, _ in commitments[0].months] if commitments else []
    height, x0, bottom, top_pad = 240, 50, 190, 30
    group = (WIDTH - x0 - 10) / max(1, len(months))
    width = min(60.0, (group - 20) / max(1, len(commitments)))
    peak = max((max(d, c) for com in commitments for _, d, c in com.months), default=0.0) or 1.0
    colours = (BLUE, PALE)
    body = [f'<line x1="{x0}" y1="{bottom}" x2="{WIDTH - 10}" y2="{bottom}" stroke="{GREY}"/>']
    for m, month in enumerate(months):
        gx = x0 + m * group + (group - len(commitments) * width) / 2
        for s, com in enumerate(commitments):
            _, delivered, committed = com.months[m]
            x = gx + s * width
            h = (bottom - top_pad) * delivered / peak
            body.append(
                f'<rect x="{x:.1f}" y="{bottom - h:.1f}" width="{width - 4:.1f}" '
                f'height="{h:.1f}" fill="{colours[s % 2]}" stroke="{BLUE}"/>'
            )
            body.append(
                _text(
                    x + (width - 4) / 2,
                    bottom - h - 4,
                    count(delivered),
                    anchor="middle",
                    extra=' font-size="11"',
                )
            )
            if com.per_month:
                cy = bottom - (bottom - top_pad) * committed / peak
                body.append(
                    f'<line x1="{x - 3:.1f}" y1="{cy:.1f}" x2="{x + width - 1:.1f}" '
                    f'y2="{cy:.1f}" stroke="{RED}" stroke-width="3"/>'
                )
        body.append(
            _text(
                x0 + (m + 0.5) * group, bottom + 16, month, anchor="middle", extra=' font-size="12"'
            )
        )
    legend = " · ".join(
        f"{com.stage} ({'dark' if i % 2 == 0 else 'light'})" for i, com in enumerate(commitments)
    )
    body.append(
        _text(
            x0,
            height - 10,
            f"delivered: {legend}; red tick: commitment (pro rata)",
            extra=' fill="#666"',
        )
    )
    return _svg(height, "Marketing deliveries against commitment", body)


def cohort_chart(cohorts: Cohorts) -> str:
    """Per cohort, the share of its leads that reached each later stage within the window:
    one bar per stage (darkest: the earliest), the exact share above bars wide enough."""
    rows, stages = cohorts.rows, cohorts.stages
    x0, bottom, top_pad = 50, 190, 24
    group = (WIDTH - x0 - 10) / max(1, len(rows))
    slanted = group < 90  # labels wider than their cohort's space are slanted
    height = 290 if slanted else 250
    width = min(48.0, (group - 12) / max(1, len(stages)))
    shares = [cohort.share(cohort.within_window, s) or 0.0 for cohort in rows for s in stages]
    peak = max(shares, default=0.0) or 1.0
    body = [
        f'<line x1="{x0}" y1="{bottom}" x2="{WIDTH - 10}" y2="{bottom}" stroke="{GREY}"/>',
        _text(x0 - 6, top_pad + 4, percent(peak, 0), anchor="end", extra=' font-size="12"'),
        _text(x0 - 6, bottom, "0 %", anchor="end", extra=' font-size="12"'),
    ]
    for c, cohort in enumerate(rows):
        gx = x0 + c * group + (group - len(stages) * width) / 2
        for s, stage in enumerate(stages):
            share = cohort.share(cohort.within_window, stage) or 0.0
            x = gx + s * width
            h = (bottom - top_pad) * share / peak
            colour = COHORT_COLOURS[min(s, len(COHORT_COLOURS) - 1)]
            body.append(
                f'<rect x="{x:.1f}" y="{bottom - h:.1f}" width="{width - 3:.1f}" '
                f'height="{h:.1f}" fill="{colour}"/>'
            )
            if width >= 30:
                body.append(
                    _text(
                        x + (width - 3) / 2,
                        bottom - h - 4,
                        percent(share, 0),
                        anchor="middle",
                        extra=' font-size="11"',
                    )
                )
        label = cohort.label + ("" if cohort.window_complete else " *")
        cx = x0 + (c + 0.5) * group
        if slanted:
            turn = f' font-size="12" transform="rotate(-35 {cx:.1f} {bottom + 14})"'
            body.append(_text(cx, bottom + 14, label, anchor="end", extra=turn))
        else:
            body.append(_text(cx, bottom + 16, label, anchor="middle", extra=' font-size="12"'))
    x = float(x0)
    for s, stage in enumerate(stages):
        colour = COHORT_COLOURS[min(s, len(COHORT_COLOURS) - 1)]
        body.append(f'<rect x="{x:.1f}" y="{height - 30}" width="12" height="12" fill="{colour}"/>')
        body.append(_text(x + 16, height - 20, stage, extra=' font-size="12"'))
        x += 30 + 7 * len(stage)
    window = format_duration(cohorts.window_seconds)
    body.append(
        _text(
            WIDTH - 10,
            height - 20,
            f"share of each cohort's leads reaching the stage within {window}",
            anchor="end",
            extra=' fill="#666" font-size="12"',
        )
    )
    return _svg(height, f"Cohorts: share reaching each stage within {window}", body)
