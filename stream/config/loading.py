"""Loading the settings: the TOML file, then the ``FUNNEL_*`` environment over it.

This module is the only code that reads ``FUNNEL_*`` variables. Every refusal is a one-line
``ConfigError`` naming the file (or variable) and the key, e.g.
``funnel.toml: north_star.conversion.mql: must be in (0, 1], got 1.5``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from stream.config.fields import Loc, Refused
from stream.config.ingest import resolve_ingest
from stream.config.settings import KafkaSettings, Settings
from stream.errors import ConfigError

__all__ = ["load_settings"]

_SECTIONS = ("funnel", "labels", "sla", "north_star", "report", "kafka", "ingest")


def load_settings(
    config_path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings from ``config_path`` (else ``FUNNEL_CONFIG``) and the environment.

    ``environ`` defaults to ``os.environ``; an empty variable counts as unset. Environment
    values override the file. Raises ``ConfigError`` with a one-line message naming the
    file or variable and the key.
    """
    given = os.environ if environ is None else environ
    env = {key: value for key, value in given.items() if value}
    path = Path(config_path) if config_path is not None else None
    if path is None and "FUNNEL_CONFIG" in env:
        path = Path(env["FUNNEL_CONFIG"])
    source, data = (str(path), _read_toml(path)) if path else ("configuration", {})
    for key in data:
        if key not in _SECTIONS:
            raise ConfigError(f"{source}: {key}: unknown key")
    # Where each environment value lands, so that an error names the variable, not the file.
    from_env: dict[Loc, str] = {}
    for field in Settings.model_fields.keys() - {*_SECTIONS, "config_path"}:
        if (variable := f"FUNNEL_{field.upper()}") in env:
            data[field] = env[variable]
            from_env[(field,)] = variable
    if isinstance(kafka := data.setdefault("kafka", {}), dict):
        _resolve_kafka(kafka, env, source, from_env)
    if isinstance(ingest := data.setdefault("ingest", {}), dict):
        resolve_ingest(ingest, env, source, from_env)
    data["config_path"] = path
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, from_env)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _resolve_kafka(
    kafka: dict[str, Any], env: Mapping[str, str], source: str, from_env: dict[Loc, str]
) -> None:
    """Lay ``FUNNEL_KAFKA_*`` over ``kafka`` and read the password it names (in place)."""
    if "sasl_password" in kafka:
        raise ConfigError(
            f"{source}: kafka.sasl_password: the password may not sit in the file; "
            "set kafka.sasl_password_env to the name of a variable that holds it"
        )
    for key in sorted(KafkaSettings.model_fields.keys() - {"sasl_password"}):
        if (variable := f"FUNNEL_KAFKA_{key.upper()}") in env:
            kafka[key] = env[variable]
            from_env[("kafka", key)] = variable
    if isinstance(name := kafka.get("sasl_password_env"), str):
        if name not in env:
            loc = ("kafka", "sasl_password_env")
            where = from_env.get(loc, f"{source}: kafka.sasl_password_env")
            raise ConfigError(f"{where}: {name} is not set")
        kafka["sasl_password"] = env[name]


def _describe(exc: ValidationError, source: str, from_env: Mapping[Loc, str]) -> str:
    """One line for all of pydantic's errors: ``source: key: problem, got value``."""
    lines: list[str] = []
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, Refused):
            loc, problem = loc + tuple(cause.key.split(".")), str(cause)
        elif error["type"] == "extra_forbidden":
            problem = "unknown key"
        elif error["type"] == "missing":
            problem = "required key is missing"
        else:
            problem = str(cause) if isinstance(cause, ValueError) else error["msg"]
            problem = re.sub(r"^(Input|String) should ", "must ", problem)
            got = repr(error["input"])
            if ", got " not in problem and not isinstance(error["input"], dict | BaseModel):
                problem += f", got {got if len(got) <= 60 else got[:57] + '...'}"
        key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
        where = from_env.get(loc[:1]) or from_env.get(loc[:2]) or f"{source}: {key[1:]}"
        lines.append(f"{where}: {problem}")
    return "; ".join(lines)
