"""The modules compiled to C by mypyc when funnel is installed, and the guard against a stale one.

The worker's per-event work (the domain in ``stream/core``, the write-back store, the
home-partition check) is plain, type-checked Python. Installing funnel (``setup.py``) also
compiles these modules with mypyc, from the same source, which makes the worker's processing of
an event about a quarter cheaper (docs/performance.md, change 31). The source stays the truth:
``FUNNEL_PURE_PYTHON=1`` installs without compiling, and a module edited after it was compiled
is not run from its stale C build: ``use_source_when_stale`` (called by ``stream/__init__.py``)
then runs every compiled module from its source and says so on stderr; ``make install``
compiles them again.

``__init__``: a dataclass in a compiled module is a native class, but the ``__init__`` that
``@dataclass`` generates is Python run by the interpreter (and a frozen one sets each field
through ``object.__setattr__``): 1.1 µs to build a six-field frozen instance, 0.3 µs a
non-frozen one, against 0.04 µs for an ``__init__`` written in the class, which mypyc
compiles. The states and statuses built for every event (``VisitorState``, ``LeadState``,
``LeadStatus``, ``OpenLead``, ``FollowUp``) write theirs out, field for field in the declared
order; ``@dataclass`` keeps an ``__init__`` the class defines and still generates the rest.

This file is read by ``setup.py`` and the Makefile without importing the package, so it
imports the standard library only.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
"""The directory holding the ``stream`` and ``schemas`` packages."""

COMPILED_MODULES: Final[tuple[str, ...]] = (
    "stream/core/bounds.py",
    "stream/core/calendar.py",
    "stream/core/codec.py",
    "stream/core/effects.py",
    "stream/core/eventtime.py",
    "stream/core/funnel.py",
    "stream/core/gauges.py",
    "stream/core/leadlist.py",
    "stream/core/leads.py",
    "stream/core/leadstatus.py",
    "stream/core/openindex.py",
    "stream/core/openleads.py",
    "stream/core/rebuild.py",
    "stream/core/record.py",
    "stream/core/rules.py",
    "stream/core/stages.py",
    "stream/core/timeheap.py",
    "stream/core/view.py",
    "stream/core/visits.py",
    "stream/core/windows.py",
    "stream/runtime/apply.py",
    "stream/runtime/batching.py",
    "stream/runtime/deadletter.py",
    "stream/runtime/reroute.py",
    "stream/runtime/seam/producer.py",
)
"""The compiled modules' sources, relative to ``ROOT``. A package's ``__init__.py`` is never
compiled: this guard runs from ``stream/__init__.py``."""

MANIFEST: Final = Path(__file__).with_name("compiled.json")
"""Written by ``setup.py`` when it compiles: the SHA-256 of each source it compiled."""


def source_digest(source: str, root: Path = ROOT) -> str:
    """The SHA-256 of a module's source (``source`` relative to ``root``)."""
    return hashlib.sha256((root / source).read_bytes()).hexdigest()


def source_digests(root: Path = ROOT) -> dict[str, str]:
    """The SHA-256 of each compiled module's source, by its path relative to ``root``."""
    return {source: source_digest(source, root) for source in COMPILED_MODULES}


def module_name(source: str) -> str:
    """``stream/core/visits.py`` -> ``stream.core.visits``."""
    return source.removesuffix(".py").replace("/", ".")


def built_modules(root: Path = ROOT) -> list[str]:
    """The compiled modules that have a C build beside their source."""
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return [
        source
        for source in COMPILED_MODULES
        if any((root / source).with_suffix(suffix).exists() for suffix in suffixes)
    ]


def stale_modules(root: Path = ROOT, manifest: Path = MANIFEST) -> list[str]:
    """Built modules whose source is no longer the one they were compiled from (all of them
    when the manifest is missing or unreadable)."""
    built = built_modules(root)
    if not built:
        return []
    try:
        compiled_from = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return built
    return [source for source in built if compiled_from.get(source) != source_digest(source, root)]


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' sources ahead of their C builds."""

    def __init__(self, sources: dict[str, Path]) -> None:
        self._sources = sources

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self._sources.get(fullname)
        return None if source is None else importlib.util.spec_from_file_location(fullname, source)


def use_source_when_stale() -> None:
    """Run every compiled module from its source if any of them changed since it was compiled.

    All of them, not only the changed one: compiled modules call each other's C functions
    directly, so a compiled caller would still reach the stale build. ``stream/__init__.py``
    calls it once per process, as the package is first imported.
    """
    stale = stale_modules()
    if not stale:
        return
    sources = {module_name(source): ROOT / source for source in COMPILED_MODULES}
    sys.meta_path.insert(0, _SourceFinder(sources))
    sys.stderr.write(
        f"funnel: {stale[0]} changed since it was compiled; running the compiled modules from "
        "their source (slower) until `make install` compiles them again\n"
    )


if __name__ == "__main__":  # the Makefile's list of what an install compiles
    print(*COMPILED_MODULES)
