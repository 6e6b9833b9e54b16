"""The package's public names are pinned: changing them is a deliberate act."""

from __future__ import annotations

import subprocess
import sys

import schemas


def test_public_names() -> None:
    assert sorted(schemas.__all__) == [
        "EVENT_MODELS",
        "Event",
        "LeadCreated",
        "REJECT_REASONS",
        "RejectReason",
        "Rejection",
        "StageChanged",
        "TopicKind",
        "Visit",
        "classify",
    ]
    for name in schemas.__all__:
        assert hasattr(schemas, name)


def test_importing_schemas_loads_no_kafka_or_faust() -> None:
    probe = (
        "import sys, schemas, schemas.export; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'faust', 'mode', 'aiokafka', 'kafka', 'confluent_kafka'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
