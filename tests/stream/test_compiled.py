"""The modules compiled by mypyc at install (stream/compiled.py): what runs, and a stale build.

The install (``make install``, setup.py) compiles every module ``COMPILED_MODULES`` names and
records what it compiled. What must hold: the processes run those C builds; a source edited
after the install is run as Python, all the compiled modules with it, with one line on
stderr; an install with ``FUNNEL_PURE_PYTHON=1`` runs the sources.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import shutil
import subprocess
import sys
from pathlib import Path

from stream import compiled
from stream.compiled import COMPILED_MODULES, MANIFEST, ROOT, module_name, stale_modules

_FILES = "import sys, {mods}; print(*[sys.modules[m].__file__ for m in {names!r}])"


def _loaded_from(root: Path, names: list[str]) -> tuple[list[str], str]:
    """Where a new interpreter with ``root`` first on its path loads ``names`` from, and what
    it wrote to stderr."""
    code = _FILES.format(mods=", ".join(names), names=names)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.split(), done.stderr


def _is_c_build(path: str) -> bool:
    return any(path.endswith(suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def test_the_processes_run_what_the_install_built() -> None:
    names = [module_name(source) for source in COMPILED_MODULES]
    files, stderr = _loaded_from(ROOT, names)
    assert stderr == ""
    if MANIFEST.exists():  # compiled (the default install): every listed module is its C build
        assert all(_is_c_build(f) for f in files), files
        beside = [Path(f).parent / Path(f).name.split(".")[0] for f in files]
        assert beside == [(ROOT / source).with_suffix("") for source in COMPILED_MODULES]
        assert stale_modules() == []
        assert set(json.loads(MANIFEST.read_text())) == set(COMPILED_MODULES)
    else:  # FUNNEL_PURE_PYTHON=1: the sources, and no C build left beside them
        assert all(f.endswith(".py") for f in files), files
        assert compiled.built_modules() == []


def _copy_tree(to: Path) -> None:
    """The packages and the install's C builds (the shared library beside the packages)."""
    for package in ("stream", "schemas"):
        shutil.copytree(ROOT / package, to / package, ignore=shutil.ignore_patterns("__pycache__"))
    for shared in ROOT.glob("*__mypyc*"):
        shutil.copy2(shared, to / shared.name)


def test_a_source_edited_after_the_install_runs_as_python_with_every_compiled_module(
    tmp_path: Path,
) -> None:
    _copy_tree(tmp_path)
    edited = tmp_path / "stream/core/bounds.py"
    edited.write_text(edited.read_text() + "\nEDITED = True\n")
    names = ["stream.core.bounds", "stream.core.funnel", "stream.runtime.batching"]
    files, stderr = _loaded_from(tmp_path, names)
    assert files == [str(tmp_path / f"{n.replace('.', '/')}.py") for n in names]
    if MANIFEST.exists():
        assert stderr.splitlines() == [
            "funnel: stream/core/bounds.py changed since it was compiled; running the compiled "
            "modules from their source (slower) until `make install` compiles them again"
        ]
        assert stale_modules(tmp_path, tmp_path / "stream/compiled.json") == [
            "stream/core/bounds.py"
        ]
    else:
        assert stderr == ""


def test_a_c_build_without_a_record_of_its_source_counts_as_stale(tmp_path: Path) -> None:
    for source in COMPILED_MODULES[:2]:
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source).write_text("x = 1\n")
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    built = tmp_path / Path(COMPILED_MODULES[1]).with_suffix(suffix)
    built.write_bytes(b"")
    manifest = tmp_path / "compiled.json"
    assert stale_modules(tmp_path, manifest) == [COMPILED_MODULES[1]]  # no manifest
    digests = {s: "0" for s in COMPILED_MODULES}
    manifest.write_text(json.dumps(digests))
    assert stale_modules(tmp_path, manifest) == [COMPILED_MODULES[1]]  # another source
    digests[COMPILED_MODULES[1]] = hashlib.sha256(b"x = 1\n").hexdigest()
    manifest.write_text(json.dumps(digests))
    assert stale_modules(tmp_path, manifest) == []  # built from this source
