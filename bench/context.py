"""What every phase of a benchmark run shares: the broker, the work directory, the children."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Children

Results = dict[str, float | int | None]


@dataclass
class Context:
    """One run: the embedded broker's address, where logs and state go, the sizes asked for."""

    bootstrap: str
    workdir: Path
    children: Children
    events: int
    leads: int
    steady_rate: float
    steady_seconds: float
    warmup_events: int
    seed: int
    profile_path: Path | None = None

    def dir(self, name: str) -> Path:
        """A fresh directory under the work directory (state or logs of one phase)."""
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def source_version() -> str | None:
    """The commit the worker's code is at, ``+dirty`` when ``stream/`` or ``schemas/`` differ."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "stream", "schemas"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        return None
    return f"{head}+dirty" if head and dirty else head or None
