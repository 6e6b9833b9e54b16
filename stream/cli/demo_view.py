"""What ``funnel demo`` shows of a scrape: the stage and team tables, the most urgent leads."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from stream.cli.leads import urgent_cells
from stream.observability.scrape import Samples, summarize

__all__ = ["render_summary"]


def _table(title: str, cells: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))
    for i, header in enumerate(cells[0]):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in cells[1:]:
        table.add_row(*row)
    return table


def render_summary(
    samples: Samples,
    stages: tuple[str, ...],
    window: str,
    leads: list[dict[str, Any]] | None = None,
) -> list[RenderableType]:
    """The view's body from a scrape: a stage table, a team table, the most urgent open
    ``leads`` (as ``/leads`` lists them, soonest deadline first; none when None) and the
    pipeline's counts."""
    summary = summarize(samples, stages, window)
    body: list[RenderableType] = [
        _table("Funnel: entries since start", summary.stage_cells()),
        _table("Follow-up per team: lead → first follow-up", summary.team_cells()),
    ]
    if leads:
        body.append(_table("Most urgent leads: soonest deadline first", urgent_cells(leads)))
    elif leads is not None:
        body.append(Text("Most urgent leads: no lead awaits a follow-up"))
    body.append(Text(f"events: {summary.events_line()}"))
    return body
