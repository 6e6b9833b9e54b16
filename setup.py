"""The build's one step beyond pyproject.toml: compile the modules in stream/compiled.py with mypyc.

The compiled modules are the same Python source, built to C extensions beside it (an editable
install puts them in the source tree). ``FUNNEL_PURE_PYTHON=1`` installs without compiling.
docs/internals.md, "Compiled modules".
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import runpy
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
compiled = runpy.run_path(str(HERE / "stream" / "compiled.py"))
MODULES: tuple[str, ...] = compiled["COMPILED_MODULES"]
MANIFEST: Path = compiled["MANIFEST"]

# C builds an earlier install left in the tree go first: a module no longer in the list, or
# one built by another mypyc run, would otherwise still be imported instead of its source.
MANIFEST.unlink(missing_ok=True)
for suffix in importlib.machinery.EXTENSION_SUFFIXES:
    for built in [*HERE.glob(f"*__mypyc{suffix}"), *HERE.glob(f"stream/**/*{suffix}")]:
        built.unlink()

if os.environ.get("FUNNEL_PURE_PYTHON", "") not in ("", "0"):
    setup()
else:
    from mypyc.build import mypycify

    # The same code wherever it builds: no project config (its strict checks are `make
    # lint`'s), no installed package looked at (third-party types are Any, as in an isolated
    # build), and errors reported only in the modules compiled.
    flags = [
        "--config-file=",
        "--no-site-packages",
        "--ignore-missing-imports",
        "--follow-imports=silent",
        "--python-version=3.11",
    ]
    MANIFEST.write_text(json.dumps(compiled["source_digests"](HERE), indent=1) + "\n")
    setup(ext_modules=mypycify([*flags, *MODULES], opt_level="3"))
