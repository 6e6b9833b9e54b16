"""The committed JSON Schemas are what the models generate, and they describe the contract."""

from __future__ import annotations

import json
from pathlib import Path

from schemas import EVENT_MODELS
from schemas.export import (
    JSON_SCHEMA_DIALECT,
    PACKAGED_SCHEMA_DIR,
    json_schemas,
    render_json_schema,
    write_json_schemas,
)

REGENERATE = "schemas changed: regenerate with `python -m schemas.export` and commit schemas/json"


def test_committed_schemas_match_the_models() -> None:
    committed = sorted(path.name for path in PACKAGED_SCHEMA_DIR.glob("*.json"))
    assert committed == sorted(f"{name}.json" for name in EVENT_MODELS), REGENERATE
    for name, schema in json_schemas().items():
        text = (PACKAGED_SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8")
        assert text == render_json_schema(schema), REGENERATE


def test_write_json_schemas_writes_one_file_per_event(tmp_path: Path) -> None:
    target = tmp_path / "out"
    paths = write_json_schemas(target)
    assert [p.name for p in paths] == ["visit.json", "lead_created.json", "stage_changed.json"]
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n")
        assert json.loads(text) == json_schemas()[path.stem]
        assert text == (PACKAGED_SCHEMA_DIR / path.name).read_text(encoding="utf-8")


def test_schemas_state_the_contract() -> None:
    schemas = json_schemas()
    visit = schemas["visit"]
    assert visit["$schema"] == JSON_SCHEMA_DIALECT
    assert visit["properties"]["type"]["const"] == "visit"
    assert visit["properties"]["occurred_at"]["format"] == "date-time"
    assert visit["properties"]["source"]["maxLength"] == 64
    assert set(visit["required"]) == {"event_id", "type", "occurred_at", "visitor_id", "source"}
    assert schemas["lead_created"]["properties"]["team"]["default"] == "default"
    assert set(schemas["stage_changed"]["required"]) == {
        "event_id",
        "type",
        "occurred_at",
        "lead_id",
        "to_stage",
    }
    # Extra fields are allowed by the contract, so the schemas must not forbid them.
    assert all("additionalProperties" not in schema for schema in schemas.values())
