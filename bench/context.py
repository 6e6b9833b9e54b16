"""What every phase of a benchmark run shares: the broker, the work directory, the children."""

from __future__ import annotations

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
