"""The building blocks of the settings: refusals, validators and the typed fields they make.

Every section of the configuration (stream.config.settings, stream.config.ingest) is made of
these, so a rule such as "a duration longer than 0s" is written once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field

from stream.core.durations import parse_duration
from stream.core.windows import parse_window

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_KAFKA_NAME = re.compile(r"[A-Za-z0-9._-]*")
FROZEN = ConfigDict(frozen=True, extra="forbid")

Loc = tuple[str | int, ...]  # a key's path, as pydantic reports it


class Refused(ValueError):
    """A cross-field refusal that knows its key, relative to the model that raises it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def must(test: Callable[[Any], object], message: str) -> AfterValidator:
    """A validator refusing, with ``message``, every value for which ``test`` is false."""

    def check(value: Any) -> Any:
        if not test(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


def whole_number(minimum: int, maximum: int = 0, *, text: bool = False) -> Any:
    """Whole numbers ≥ ``minimum`` (and ≤ ``maximum`` if given); ``text`` takes digit strings."""
    bounds = f"from {minimum} to {maximum}" if maximum else f"≥ {minimum}"

    def check(value: object) -> int:
        if text and isinstance(value, str) and value.isascii() and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"must be a whole number {bounds}")
        if maximum and value > maximum:
            raise ValueError(f"must be a whole number {bounds}")
        return value

    return BeforeValidator(check)


def distinct(empty: str | None = "must not be empty") -> AfterValidator:
    """A list with no repeats that, unless ``empty`` is None, is refused when empty."""

    def check(values: tuple[str, ...]) -> tuple[str, ...]:
        if empty is not None and not values:
            raise ValueError(empty)
        for index, value in enumerate(values):
            if value in values[:index]:
                raise ValueError(f"lists {value!r} twice")
        return values

    return AfterValidator(check)


def is_time_zone(value: str) -> bool:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def tiles_a_day(value: str) -> str:
    """Refuse, at load time, a window the core cannot lay out (e.g. ``7h``)."""
    try:
        parse_window(value, "UTC")  # the width rules do not depend on the zone
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix(f"window {value!r}: ")) from None
    return value


def brokers(value: object) -> tuple[str, ...]:
    """``"kafka://h1:9092,h2:9092"`` (or ``;``-separated, or a sequence) → ``("h1:9092", ...)``."""
    items = value.replace(";", ",").split(",") if isinstance(value, str) else value
    servers: list[str] = []
    for item in items if isinstance(items, list | tuple) else [items]:
        server = str(item).strip()
        if server.lower().startswith("kafka://"):
            server = server[len("kafka://") :]
        host, _, port = server.rstrip("/").rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, comma-separated, e.g. 'kafka://127.0.0.1:9092'")
        servers.append(f"{host}:{port}")
    return tuple(servers)


NON_NEGATIVE = must(lambda v: v >= 0, "must be ≥ 0")
Seconds = Annotated[float, BeforeValidator(parse_duration)]
PositiveSeconds = Annotated[Seconds, must(lambda v: v > 0, "must be longer than 0s")]
Window = Annotated[
    str,
    must(lambda v: parse_duration(v) > 0, "must be longer than 0s"),
    AfterValidator(tiles_a_day),
]
TimeZoneName = Annotated[str, must(is_time_zone, "must be an IANA time zone such as 'UTC'")]
StageName = Annotated[str, must(_NAME.fullmatch, "must be a name made of a-z, 0-9 and _")]
Stages = Annotated[tuple[StageName, ...], distinct(None)]
AllowList = Annotated[tuple[str, ...], distinct("must not be empty; leave the key out")]
Amount = Annotated[float, Field(strict=True, allow_inf_nan=False), NON_NEGATIVE]
Rate = Annotated[float, Field(strict=True), must(lambda v: 0 < v <= 1, "must be in (0, 1]")]
KafkaName = Annotated[str, must(_KAFKA_NAME.fullmatch, "must be made of A-Z a-z 0-9 . _ -")]
