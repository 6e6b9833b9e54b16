"""Publish the event models as JSON Schema files, for producers in other teams.

``schemas/json/`` holds the generated files and is committed; a test fails when the models
change without regenerating them. Regenerate with ``python -m schemas.export``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from schemas.events import EVENT_MODELS

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
"""The JSON Schema draft that pydantic generates."""

PACKAGED_SCHEMA_DIR: Final = Path(__file__).parent / "json"
"""Where the committed schema files live inside the package."""


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each event model, keyed by the event's ``type`` value."""
    return {
        name: {"$schema": JSON_SCHEMA_DIALECT, **model.model_json_schema()}
        for name, model in EVENT_MODELS.items()
    }


def render_json_schema(schema: dict[str, Any]) -> str:
    """The file text for one schema: sorted keys, two-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_json_schemas(directory: Path) -> list[Path]:
    """Write ``<type>.json`` for every event into ``directory`` and return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / f"{name}.json"
        path.write_text(render_json_schema(schema), encoding="utf-8")
        written.append(path)
    return written


def main() -> None:
    """Regenerate the packaged schema files (``python -m schemas.export``)."""
    write_json_schemas(PACKAGED_SCHEMA_DIR)


if __name__ == "__main__":
    main()
