"""A py-spy profile of the worker during the throughput phase, and its summary.

``py-spy record --format raw --function --threads`` samples the worker's Python stacks 100
times a second (pausing it briefly each time, so a profiled run's worker rate is a little
lower) and writes one line per distinct stack, ``thread (tid): name;frame;…;frame count``, each
frame ``function (file:line)``; idle threads are left out. :func:`summarize` turns that into
the share of samples per thread, per package and per function where the time is spent (self:
the sampled frame itself) and inside it (inclusive: anywhere on the stack).
"""

from __future__ import annotations

import logging
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path

from bench.procs import Child, Children

log = logging.getLogger(__name__)

_RATE = 100
_TOP = 25
_ROOT_SHARE = 0.6


def _py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise FileNotFoundError("py-spy is not installed (pip install py-spy)")
    return found


def start_profiler(children: Children, pid: int, output: Path, log_dir: Path) -> Child:
    """Start py-spy on ``pid``; it writes raw (collapsed) stacks to ``output`` when stopped."""
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [_py_spy(), "record", "--pid", str(pid), "--format", "raw", "--function", "-t"]
    command += ["--rate", str(_RATE), "--output", str(output)]
    child = Child(name="py-spy", command=command, log_path=log_dir / "py-spy.log")
    log.info("profiling pid=%s into %s", pid, output)
    return children.start(child)


def stop_profiler(child: Child, output: Path | None) -> None:
    """Stop py-spy (SIGINT: it writes its file) and write the summary next to the raw file."""
    child.stop(grace_s=60.0, signum=signal.SIGINT)
    if output is None or not output.exists():
        log.warning("py-spy wrote no profile; its log:\n%s", child.tail())
        return
    summary = summarize(output.read_text())
    text_path = output.with_suffix(".txt")
    text_path.write_text(summary)
    log.info("profile summary in %s", text_path)


def _function(frame: str) -> str:
    """``handle (stream/runtime/worker.py:139)`` → ``handle (stream/runtime/worker.py)``.

    Keeps the function."""
    name, _, where = frame.rpartition(" (")
    if not name:
        return frame
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({path})"


def _thread(frame: str) -> str:
    """``thread (0x7f…): MainThread`` → ``MainThread``."""
    return frame.partition("): ")[2] or frame


def _package(frame: str) -> str:
    """The top-level package (or stdlib module) a frame's file belongs to."""
    _, found, where = frame.rpartition(" (")
    if not found:
        return frame
    path = where.rstrip(")").rsplit(":", 1)[0]
    if path.startswith("<"):  # <frozen runpy> and the like
        return path
    head = path.split("/", 1)[0]
    return head.removesuffix(".py")


def summarize(raw: str, top: int = _TOP) -> str:
    """A text summary of py-spy raw output: sample count, top self, top inclusive, packages."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames[0].startswith("thread ("):
            threads[_thread(frames.pop(0))] += count
            frames = frames or ["(no Python frame)"]
        total += count
        self_time[_function(frames[-1])] += count
        packages[_package(frames[-1])] += count
        for name in {_function(frame) for frame in frames}:
            inclusive[name] += count
    if total == 0:
        return "no samples\n"
    lines = [f"{total} samples at {_RATE} Hz (~{total / _RATE:.0f} s of busy thread time)"]
    # The frames under nearly every sample (entry point, event loop) say nothing: left out.
    roots = [name for name, count in inclusive.items() if count > _ROOT_SHARE * total]
    for name in roots:
        del inclusive[name]
    for title, counter in (
        ("samples by thread", threads),
        ("self time by package", packages),
        ("self time by function", self_time),
        (
            f"inclusive time by function (without the {len(roots)} frames on most samples)",
            inclusive,
        ),
    ):
        lines += ["", f"{title}:", "   share  samples  where"]
        for name, count in counter.most_common(top):
            lines.append(f"  {100 * count / total:5.1f}%  {count:7d}  {name}")
    return "\n".join(lines) + "\n"
