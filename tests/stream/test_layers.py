"""The layers of ``stream/`` depend one way: nothing pure reaches into the runtime.

Read from the source (every ``import``, also inside functions), so a lazy import cannot hide
a dependency. ``stream.core`` imports nothing of the project but itself and ``schemas``; the
planning and the reports never import the Faust adapter or the command line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

STREAM = Path(__file__).resolve().parents[2] / "stream"


def imported_modules(package: str) -> dict[str, set[str]]:
    """For each module file of ``stream.<package>``: the absolute module names it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((STREAM / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(STREAM.parent))] = names
    return found


def project_imports(names: set[str]) -> set[str]:
    return {name for name in names if name.split(".")[0] in {"stream", "schemas"}}


def test_core_imports_only_itself_and_the_schemas() -> None:
    modules = imported_modules("core")
    assert len(modules) >= 10
    for path, names in modules.items():
        outside = {
            n for n in project_imports(names) if not n.startswith(("stream.core", "schemas"))
        }
        assert not outside, f"{path} imports {sorted(outside)}"


@pytest.mark.parametrize("package", ["core", "planning", "report", "config", "ingest"])
def test_pure_layers_do_not_import_the_runtime_or_the_command_line(package: str) -> None:
    modules = imported_modules(package)
    assert modules, package
    for path, names in modules.items():
        wrong = {n for n in names if n.startswith(("stream.runtime", "stream.cli", "faust"))}
        assert not wrong, f"{path} imports {sorted(wrong)}"


def test_the_ingest_mapping_is_pure() -> None:
    """Calls → events without I/O: no aiohttp, no Kafka client, nothing of the gateway."""
    for path, names in imported_modules("ingest/mapping").items():
        wrong = {
            n
            for n in names
            if n.startswith(
                ("aiohttp", "aiokafka", "stream.ingest.server", "stream.ingest.run", "stream.kafka")
            )
        }
        assert not wrong, f"{path} imports {sorted(wrong)}"


def test_an_import_of_the_runtime_is_found() -> None:
    """The check sees a runtime import where there is one (the command line starts a worker)."""
    names = set().union(*imported_modules("cli").values())
    assert any(n.startswith("stream.runtime") for n in names)
