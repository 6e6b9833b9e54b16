"""``python -m bench``: run the benchmark on one embedded broker; a table, then one JSON line.

Progress goes to stderr. The table and the JSON object (always the last line) go to stdout.
Every process started here (broker, workers, the naive app, py-spy) is stopped on the way out,
on success, failure, Ctrl-C or SIGTERM. The exit code is 0 when every phase ran (targets
missed or not), 1 when one failed, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType

from bench.backfill import run_report
from bench.context import Context, Results, source_version
from bench.ingest import run_ingest
from bench.latency import run_latency
from bench.procs import Children
from bench.report import json_line, table
from bench.reroute import run_reroute
from bench.restart import run_memory_and_restart
from bench.scaleout import run_two_workers
from bench.throughput import Input, prepare_input, run_naive, run_raw, run_worker
from stream.kafka.broker import EmbeddedBroker

log = logging.getLogger("bench")

PHASES = (
    "raw",
    "naive",
    "worker",
    "worker2",
    "reroute",
    "latency",
    "restart",
    "ingest",
    "report",
)
_THROUGHPUT = ("raw", "naive", "worker")


def _positive(text: str) -> int:
    value = int(text.replace(",", "").replace("_", ""))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the funnel worker on an embedded broker (docs/performance.md).",
    )
    parser.add_argument(
        "--events", type=_positive, default=None, help="input messages (default 1,000,000)"
    )
    parser.add_argument(
        "--leads",
        type=_positive,
        default=None,
        help="open leads for RSS/restart (default 1,000,000)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--only", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}"
    )
    parser.add_argument("--steady-rate", type=float, default=5000.0, help="events/s (latency)")
    parser.add_argument("--steady-seconds", type=float, default=None, help="default 30 (10 quick)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy raw profile of the worker phase here"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="logs and state (kept)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    args = parser.parse_args(argv)
    phases = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        parser.error(f"unknown phase(s) {', '.join(unknown)}; choose from {', '.join(PHASES)}")
    args.phases = [name for name in PHASES if name in phases]
    small = args.quick
    args.events = args.events or (50_000 if small else 1_000_000)
    args.leads = args.leads or (50_000 if small else 1_000_000)
    args.steady_seconds = args.steady_seconds or (10.0 if small else 30.0)
    args.warmup = 10_000 if small else 50_000
    return args


async def _run(ctx: Context, phases: list[str], results: Results, errors: dict[str, str]) -> None:
    data: Input | None = None

    async def attempt(name: str, body: Callable[[], Awaitable[Results]]) -> None:
        started = time.monotonic()
        log.info("phase %s: start (load average %.2f)", name, os.getloadavg()[0])
        try:
            results.update(await body())
        # The harness reports every phase it can: a failed one is logged in full, named in
        # the JSON's "errors", and the next phase runs (its processes are already stopped).
        except Exception as exc:
            log.exception("phase %s failed", name)
            errors[name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        else:
            log.info("phase %s: done in %.0f s", name, time.monotonic() - started)

    if any(name in (*_THROUGHPUT, "worker2") for name in phases):

        async def produce_input() -> Results:
            nonlocal data
            data = await prepare_input(ctx)
            return {"events": data.total}

        await attempt("input", produce_input)
    for name in phases:
        if name in _THROUGHPUT:
            if data is None:
                continue
            body = {"raw": run_raw, "naive": run_naive, "worker": run_worker}[name]
            await attempt(name, functools.partial(body, ctx, data))
        elif name == "worker2":
            if data is not None:
                await attempt(name, functools.partial(run_two_workers, ctx, data, results))
        elif name == "reroute":
            worker = results.get("worker_events_per_s")
            rate = float(worker) if isinstance(worker, int | float) else None
            await attempt(name, functools.partial(run_reroute, ctx, rate))
        elif name == "latency":
            await attempt(name, functools.partial(run_latency, ctx))
        elif name == "ingest":
            await attempt(name, functools.partial(run_ingest, ctx))
        elif name == "report":
            await attempt(name, functools.partial(run_report, ctx))
        else:
            await attempt(name, functools.partial(run_memory_and_restart, ctx))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and, last, the JSON object."""
    args = _parse(argv)
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S", level=logging.WARNING)
    log.setLevel(logging.INFO)
    # Interruptible even when started in the background, where SIGINT is inherited ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="funnel-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log.info("work directory %s (logs, state); phases %s", workdir, ",".join(args.phases))
    children = Children()
    broker = EmbeddedBroker(log_path=workdir / "broker.log")
    results: Results = {"cpus": os.cpu_count(), "load_avg_1m_at_start": os.getloadavg()[0]}
    errors: dict[str, str] = {}
    code = 0
    try:
        broker.start()
        ctx = Context(
            bootstrap=broker.bootstrap,
            workdir=workdir,
            children=children,
            events=args.events,
            leads=args.leads,
            steady_rate=args.steady_rate,
            steady_seconds=args.steady_seconds,
            warmup_events=args.warmup,
            seed=args.seed,
            profile_path=args.profile.resolve() if args.profile else None,
        )
        asyncio.run(_run(ctx, args.phases, results, errors))
        code = 1 if errors else 0
    except KeyboardInterrupt as exc:
        errors["interrupted"] = str(exc) or "SIGINT"
        code = 130
    finally:
        children.stop_all()
        broker.stop()
    results["load_avg_1m_at_end"] = os.getloadavg()[0]
    if not args.workdir and not args.keep and not errors:
        shutil.rmtree(workdir, ignore_errors=True)
    elif errors:
        log.info("kept %s for the logs", workdir)
    print(table(results))
    print(json_line(results, errors, source=source_version()))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
