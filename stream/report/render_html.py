"""The report as one self-contained HTML file: inline CSS and SVG, nothing fetched, printable."""

from __future__ import annotations

from html import escape

from stream.report.layout import Block, Table, blocks
from stream.report.model import Report
from stream.report.svg import cohort_chart, deliveries_chart, funnel_chart, latency_chart

__all__ = ["render_html"]

_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #111;
       max-width: 980px; margin: 24px auto; padding: 0 20px; background: #fff; }
h1 { font-size: 26px; margin-bottom: 4px; }
h2 { font-size: 21px; margin-top: 34px; border-bottom: 2px solid #2563eb; padding-bottom: 4px; }
h3 { font-size: 17px; margin-top: 22px; }
p { margin: 6px 0; }
table { border-collapse: collapse; margin: 10px 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #cbd5e1; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td:first-child { white-space: nowrap; }
th { background: #eff6ff; }
table.text td, table.text th { text-align: left; }
svg.chart { width: 100%; max-width: 720px; height: auto; display: block; margin: 10px 0;
            font: 14px system-ui, sans-serif; }
section { break-inside: avoid; page-break-inside: avoid; }
@page { margin: 14mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  svg.chart { max-width: 150mm; }
  h2 { break-after: avoid; page-break-after: avoid; }
  svg.chart, th, rect, line { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in table.rows
    )
    css = ' class="text"' if table.text else ""
    return f"<table{css}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _chart(block: Block, report: Report) -> str:
    if block.chart == "funnel":
        return funnel_chart(report.funnel)
    if block.chart == "latency":
        judged = "business-hours" if report.business_hours else "wall-clock"
        return latency_chart(report.latency_buckets, report.sla_seconds, judged)
    if block.chart == "deliveries":
        return deliveries_chart(report.commitments)
    if block.chart == "cohorts":
        return cohort_chart(report.cohorts)
    return ""


def render_html(report: Report) -> str:
    """The whole report as one HTML document."""
    parts: list[str] = []
    for block in blocks(report):
        level = block.level
        inner = [f"<h{level}>{escape(block.title)}</h{level}>"]
        inner += [f"<p>{escape(sentence)}</p>" for sentence in block.text]
        if block.chart is not None:
            inner.append(_chart(block, report))
        if block.table is not None:
            inner.append(_table(block.table))
        # Level-2 headings open a section that flows; level 3 blocks are kept on one page.
        parts.append(
            "\n".join(inner) if level < 3 else "<section>" + "\n".join(inner) + "</section>"
        )
    p = report.period
    title = escape(f"Funnel report {p.label_from} → {p.label_to}")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
