"""The report as Markdown (``--format md``, the default)."""

from __future__ import annotations

from stream.report.layout import Table, blocks
from stream.report.model import Report

__all__ = ["render_markdown"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(table: Table) -> list[str]:
    align = ["---", *("---" if table.text else "---:" for _ in table.header[1:])]
    lines = [
        "| " + " | ".join(_cell(h) for h in table.header) + " |",
        "| " + " | ".join(align) + " |",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    return lines


def render_markdown(report: Report) -> str:
    """The whole report as one Markdown document."""
    lines: list[str] = []
    for block in blocks(report):
        lines += ["#" * block.level + " " + block.title, ""]
        for sentence in block.text:
            lines += [sentence, ""]
        if block.table is not None:
            lines += [*_table(block.table), ""]
    return "\n".join(lines).rstrip() + "\n"
