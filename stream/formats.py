"""How numbers read to a person: counts, shares and durations, for the live view and the reports."""

from __future__ import annotations

__all__ = ["count", "percent", "seconds"]


def count(n: float) -> str:
    """A count with thousands separators (``182,880``); fractions are rounded."""
    return f"{n:,.0f}"


def percent(ratio: float | None, digits: int = 1) -> str:
    """A ratio as a percentage (``35.0 %``), ``-`` when unknown."""
    return "-" if ratio is None else f"{100 * ratio:.{digits}f} %"


def seconds(value: float | None) -> str:
    """A duration in its largest unit with one decimal (``42s``, ``12.5m``, ``3.0h``, ``1.5d``)."""
    if value is None:
        return "-"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}s"
