"""``funnel leads``: the group's open leads from any worker's ``/leads?scope=group``."""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from stream.errors import FunnelError

COLUMNS = (
    "lead_id",
    "team",
    "owner",
    "source",
    "campaign",
    "stage",
    "clock_start",
    "deadline",
    "seconds_left",
)
# A group answers 503 while it rebalances: retry for this long before giving up.
RETRY_FOR_S = 15.0


def fetch_leads(
    url: str,
    *,
    status: str = "awaiting",
    team: str | None = None,
    owner: str | None = None,
    before: str | None = None,
    stage: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The group's leads as ``/leads?scope=group`` lists them; ``FunnelError`` in one line."""
    params = {"status": status, "limit": str(limit), "scope": "group"}
    filters = (("team", team), ("owner", owner), ("before", before), ("stage", stage))
    params.update({k: v for k, v in filters if v})
    address = f"{url.rstrip('/')}/leads?{urllib.parse.urlencode(params)}"
    give_up = time.monotonic() + RETRY_FOR_S
    while True:
        try:
            with urllib.request.urlopen(address, timeout=30) as got:
                leads: list[dict[str, Any]] = json.loads(got.read())["leads"]
                return leads
        except urllib.error.HTTPError as exc:
            reason = _reason(exc)
            if exc.code == 503 and time.monotonic() < give_up:
                time.sleep(float(exc.headers.get("Retry-After") or 1))
                continue
            raise FunnelError(f"{url} answered {exc.code}: {reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            detail = getattr(exc, "reason", exc)
            raise FunnelError(f"cannot reach the worker at {url}: {detail}") from None


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"])
    except (ValueError, KeyError, TypeError):
        return exc.reason or "error"


def render_leads(leads: Sequence[dict[str, Any]], fmt: str) -> str:
    """``table`` (times in UTC, time left as hours and minutes), ``json`` or ``csv``."""
    if fmt == "json":
        return json.dumps(list(leads), indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(leads)
        return out.getvalue()
    header = ("lead", "team", "owner", "source", "campaign", "stage", "clock start", "deadline")
    rows = [(*header, "left")]
    for lead in leads:
        rows.append(
            (
                lead["lead_id"],
                lead["team"],
                lead["owner"] or "-",
                lead["source"] or "-",
                lead["campaign"] or "-",
                lead["stage"] or "-",
                _utc(lead["clock_start"]),
                _utc(lead["deadline"]),
                time_left(lead["seconds_left"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    if not leads:
        lines.append("(no leads)")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def urgent_cells(leads: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The short form of the list, headers first: lead, team, owner, deadline (UTC), left."""
    return [["lead", "team", "owner", "deadline (UTC)", "left"]] + [
        [
            lead["lead_id"],
            lead["team"],
            lead["owner"] or "-",
            _utc(lead["deadline"]),
            time_left(lead["seconds_left"]),
        ]
        for lead in leads
    ]


def time_left(seconds: float) -> str:
    """``3h05m`` left, ``-0h20m`` overdue."""
    sign = "-" if seconds < 0 else ""
    minutes = int(abs(seconds) // 60)
    return f"{sign}{minutes // 60}h{minutes % 60:02d}m"


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")
