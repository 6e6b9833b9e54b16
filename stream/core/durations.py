"""Durations as written in the configuration file: ``"90s"``, ``"15m"``, ``"24h"``, ``"1h30m"``.

A duration is one or more ``<number><unit>`` parts, largest unit first, each unit at most
once. Units: ``w`` (week), ``d`` (day), ``h`` (hour), ``m`` (minute), ``s`` (second).
Numbers are non-negative and may have a decimal part (``"1.5h"``). Durations are handled
as float seconds everywhere else in the code. The parser sits in the core because a window's
name is a duration too (``stream.core.windows``): one grammar for the settings and the core.
"""

from __future__ import annotations

import math
import re

UNIT_SECONDS: dict[str, int] = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}

_PART = re.compile(r"(\d+(?:\.\d+)?)([a-z]+)")
_EXAMPLES = "a duration such as '90s', '15m', '24h', '7d' or '1h30m'"


def parse_duration(text: str) -> float:
    """Return the number of seconds ``text`` stands for, or raise ``ValueError``.

    The whole string must be made of ``<number><unit>`` parts with units in decreasing
    order (``"1h30m"``, not ``"30m1h"``); surrounding whitespace is ignored.
    """
    if not isinstance(text, str):
        raise ValueError(f"must be {_EXAMPLES}, got {text!r}")
    stripped = text.strip().lower()
    seconds = 0.0
    position = 0
    previous_unit_size = math.inf
    for match in _PART.finditer(stripped):
        number, unit = match.groups()
        if match.start() != position or unit not in UNIT_SECONDS:
            break
        size = UNIT_SECONDS[unit]
        if size >= previous_unit_size:
            raise ValueError(f"units must go from largest to smallest, each once, got {text!r}")
        previous_unit_size = size
        seconds += float(number) * size
        position = match.end()
    if not stripped or position != len(stripped):
        raise ValueError(f"must be {_EXAMPLES}, got {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Write ``seconds`` the way the configuration does: 86400 → ``"1d"``, 5400 → ``"1h30m"``.

    Days are the largest unit used (``"7d"`` rather than ``"1w"``); a fractional remainder
    is kept on the seconds (``"1.5s"``). ``parse_duration(format_duration(x)) == x`` for
    any non-negative ``x`` given in whole milliseconds.
    """
    if isinstance(seconds, bool) or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be a finite number of seconds ≥ 0, got {seconds!r}")
    whole = int(seconds)
    fraction = round(seconds - whole, 3)
    parts: list[str] = []
    for unit in ("d", "h", "m"):
        count, whole = divmod(whole, UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    if fraction:
        parts.append(f"{whole + fraction:g}s")
    elif whole or not parts:
        parts.append(f"{whole}s")
    return "".join(parts)
