"""The soak (issue 17): one worker for ``minutes`` at a steady rate, with Prometheus scraping it.

On one embedded broker, topics of prefix ``soak.`` (8 partitions) first get ``leads`` open
leads (hand-built ``lead_created`` events, at the start of the traffic's event time), as fast
as the broker takes them. One worker (``funnel worker`` through bench/delayworker.py, which
keeps every record's exact delay; event clock, RocksDB) catches up with them while a real
Prometheus scrapes it every ``scrape_s`` seconds with the project's rules loaded. Then the
generator's mix (visits, leads, stage changes, follow-ups, duplicates and a few rejects) is
produced at ``rate`` events/s for ``minutes``, while a plain aiokafka client (bench/rawdelay.py,
no group) reads the same topics and keeps its own exact delays: the floor under the worker's,
in the same run. The worker's RSS (``VmRSS``) is sampled every few seconds, and at each
block's end (``block_s``) the harness notes how many delays each file holds.

Then the traffic stops; once the worker has caught up, its state gauges (``/metrics``, and the
same series in Prometheus after a scrape that began later) are compared with the offline
recount over the topics, and the worker is stopped and its log scanned. The verdicts are those
of bench/soakreport.py.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import logging
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from bench.context import source_version
from bench.kafka import (
    PARTITIONS,
    create_topics,
    end_offsets,
    generated,
    open_leads,
    produce_all,
    produce_paced,
)
from bench.latency import delays_in
from bench.procs import Child, ChildFailed, Children, raw_delay_child, worker_child
from bench.prom import Prometheus
from bench.soakcheck import (
    differences,
    dump_inputs,
    expected_gauges,
    log_problems,
    prometheus_gauges,
    recount_dump,
    scraped_gauges,
)
from bench.soakreport import Mark, Outcome, json_line, make_blocks, table
from bench.track import wait_caught_up, wait_healthy
from stream.config.topics import TopicNames
from stream.generate import OutMessage
from stream.kafka.broker import EmbeddedBroker

log = logging.getLogger("bench.soak")  # also when run as __main__

# The fill's leads open this long before the traffic's first event time (bench.kafka's
# traffic spans the week up to a minute ago).
_WEEK_S = 7 * 86400.0
_READY_TIMEOUT_S = 300.0
_RAW_TIMEOUT_S = 120.0
_TICK_S = 0.5


@dataclass(frozen=True)
class Plan:
    """The soak's sizes (issue 17's defaults)."""

    minutes: float = 20.0
    block_s: float = 300.0
    rate: float = 5000.0
    leads: int = 200_000
    scrape_s: float = 5.0
    rss_every_s: float = 5.0
    seed: int = 17
    prefix: str = "soak."

    @property
    def seconds(self) -> float:
        """Seconds of steady traffic."""
        return self.minutes * 60.0

    @property
    def steady_events(self) -> int:
        """Messages of steady traffic."""
        return int(self.rate * self.seconds)


async def run_soak(bootstrap: str, workdir: Path, children: Children, plan: Plan) -> Outcome:
    """Run the soak on the broker at ``bootstrap``; the figures to judge."""
    names = TopicNames.from_prefix(plan.prefix)
    logs = workdir / "logs"
    await create_topics(bootstrap, names)
    started = time.time()
    fill_start = started - 60.0 - _WEEK_S - plan.leads / 1000.0 - 60.0
    leads = open_leads(names, first=0, count=plan.leads, start_s=fill_start)
    await produce_all(bootstrap, leads, "open leads")
    worker_delays, raw_delays = logs / "worker-delays.f64", logs / "raw-delays.f64"
    for path in (worker_delays, raw_delays):
        path.unlink(missing_ok=True)
    app = plan.prefix.rstrip(".") or "soak"
    worker = worker_child(
        bootstrap=bootstrap,
        prefix=plan.prefix,
        app_id=app,
        data_dir=workdir / "state",
        log_dir=logs,
        delays=worker_delays,
    )
    children.start(worker)
    prometheus = Prometheus(workdir / "prometheus", f"127.0.0.1:{worker.port}", plan.scrape_s)
    children.start(prometheus.child)

    async def consumed() -> float:
        return (await worker.metrics()).value("funnel_events_consumed_total")

    await wait_healthy(worker, timeout_s=_READY_TIMEOUT_S)
    await prometheus.wait_ready()
    caught = await wait_caught_up(
        bootstrap=bootstrap,
        group=app,
        ends=await end_offsets(bootstrap, names.inputs),
        child=worker,
        processed=consumed,
        label="open leads",
    )
    fill_rate = plan.leads / (caught.done_at - worker.started_at)
    log.info("open leads: %s in the worker, rss %.0f MiB", plan.leads, worker.memory_mb("VmRSS"))

    raw = raw_delay_child(
        bootstrap=bootstrap,
        topics=names.inputs,
        count=plan.steady_events,
        log_dir=logs,
        delays=raw_delays,
    )
    children.start(raw)
    await _wait_ready_line(raw)

    traffic = generated(names, count=plan.steady_events, seed=plan.seed)
    marks: list[Mark] = []
    rss: list[tuple[float, float]] = []
    sent = [0]

    def counted() -> Iterator[OutMessage]:
        for message in traffic:
            sent[0] += 1
            yield message

    def mark(at_s: float) -> Mark:
        return Mark(
            at_s,
            time.time(),
            sent[0],
            delays_in(worker_delays),
            delays_in(raw_delays),
            worker_cpu_s=cpu_seconds(worker.pid),
            load_1m=os.getloadavg()[0],
        )

    steady_start = time.monotonic()
    marks.append(mark(0.0))
    stop = asyncio.Event()
    monitor = asyncio.create_task(_monitor(plan, worker, steady_start, marks, rss, mark, stop))
    try:
        paced = await produce_paced(bootstrap, counted(), rate=plan.rate, label="steady traffic")
    finally:
        stop.set()
        await monitor
    total = plan.leads + paced.sent
    log.info(
        "steady traffic: %s messages in %.0f s (%.0f/s)", paced.sent, paced.seconds, paced.rate
    )
    done_producing = time.monotonic()
    ends = await end_offsets(bootstrap, names.inputs)
    if sum(ends.values()) != total:
        raise ChildFailed(f"the topics hold {sum(ends.values()):,} messages, {total:,} were sent")
    await wait_caught_up(
        bootstrap=bootstrap, group=app, ends=ends, child=worker, processed=consumed, label="soak"
    )
    catch_up_s = time.monotonic() - done_producing
    await _wait_exit(raw)
    end = mark(time.monotonic() - steady_start)
    if len(marks) > 1 and end.at_s - marks[-1].at_s < plan.block_s / 2:
        marks.pop()  # a short remainder joins the block before it
    marks.append(end)
    rss.append((marks[-1].at_s, worker.memory_mb("VmRSS") or 0.0))

    outcome = Outcome(
        minutes=plan.minutes,
        rate=plan.rate,
        open_leads=plan.leads,
        fill_events_per_s=fill_rate,
        steady_events=paced.sent,
        steady_events_per_s=paced.rate,
        rss=rss,
        catch_up_s=catch_up_s,
        load_avg=list(os.getloadavg()),
    )
    caught_wall = time.time()
    samples = await worker.metrics()
    await prometheus.wait_scraped_after(caught_wall)
    scraped = scraped_gauges(samples)
    outcome.prometheus_mismatches = [
        f"prometheus: {d}" for d in differences(await prometheus_gauges(prometheus), scraped)
    ]
    prom_p99 = [await _prometheus_p99(prometheus, m.wall, plan.block_s) for m in marks[1:]]
    worker.stop()
    prometheus.child.stop()
    outcome.log_problems, outcome.log_first = log_problems(
        worker.log_path.read_text(errors="replace").splitlines()
    )
    outcome.blocks = make_blocks(
        marks, read_delays_unsorted(worker_delays), read_delays_unsorted(raw_delays), rss, prom_p99
    )
    dump = workdir / "inputs.bin"
    log.info("recount: reading the topics back")
    outcome.recounted_events = await dump_inputs(bootstrap, names, dump)
    log.info("recount: %s messages", f"{outcome.recounted_events:,}")
    expected = expected_gauges(await asyncio.to_thread(recount_dump, dump, PARTITIONS))
    dump.unlink(missing_ok=True)
    outcome.gauges_compared = len(set(scraped) | set(expected))
    outcome.gauge_mismatches = differences(scraped, expected)
    if outcome.recounted_events != total:
        outcome.gauge_mismatches.append(
            f"read back {outcome.recounted_events:,} messages, {total:,} were sent"
        )
    return outcome


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid``, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name, the state is field 3; utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_delays_unsorted(path: Path) -> list[float]:
    """Every delay of ``path`` in the order written (the worker's fill first)."""
    delays = array.array("d")
    delays.frombytes(path.read_bytes() if path.exists() else b"")
    return delays.tolist()


async def _monitor(
    plan: Plan,
    worker: Child,
    steady_start: float,
    marks: list[Mark],
    rss: list[tuple[float, float]],
    mark: Callable[[float], Mark],
    stop: asyncio.Event,
) -> None:
    """Sample the worker's RSS and note each block's end until ``stop``."""
    next_rss = 0.0
    next_block = plan.block_s
    while not stop.is_set():
        at = time.monotonic() - steady_start
        worker.check_alive()
        if at >= next_rss:
            mb = worker.memory_mb("VmRSS")
            if mb is not None:
                rss.append((at, mb))
            next_rss += plan.rss_every_s
        if at >= next_block:  # also past plan.seconds, when the broker takes the rate slower
            marks.append(mark(at))
            log.info("block %d done: rss %.0f MiB", len(marks) - 1, rss[-1][1] if rss else 0)
            next_block += plan.block_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _TICK_S)


async def _prometheus_p99(prometheus: Prometheus, wall: float, block_s: float) -> float | None:
    """Prometheus's p99 of the worker's delay histogram over the block ending at ``wall``."""
    window = f"{max(1, round(block_s))}s"
    expr = (
        "histogram_quantile(0.99, sum by (le) "
        f"(increase(funnel_processing_delay_seconds_bucket[{window}])))"
    )
    rows = await prometheus.query(expr, at=wall)
    return rows[0][1] if rows and rows[0][1] == rows[0][1] else None


async def _wait_ready_line(child: Child) -> None:
    deadline = time.monotonic() + _RAW_TIMEOUT_S
    while "ready" not in child.tail(200).splitlines():
        child.check_alive()
        if time.monotonic() > deadline:
            raise ChildFailed(f"{child.name}: not ready in {_RAW_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.1)


async def _wait_exit(child: Child) -> None:
    deadline = time.monotonic() + _RAW_TIMEOUT_S
    while child.process is not None and child.process.poll() is None:
        if time.monotonic() > deadline:
            log.warning("%s: still reading after %.0f s; stopped", child.name, _RAW_TIMEOUT_S)
            child.stop()
            return
        await asyncio.sleep(0.2)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="The soak: one worker at a steady rate for minutes (docs/reliability.md).",
    )
    parser.add_argument("--minutes", type=float, default=Plan.minutes)
    parser.add_argument("--block-seconds", type=float, default=Plan.block_s)
    parser.add_argument("--rate", type=float, default=Plan.rate, help="events/s")
    parser.add_argument("--leads", type=int, default=Plan.leads, help="open leads first")
    parser.add_argument("--scrape-seconds", type=float, default=Plan.scrape_s)
    parser.add_argument("--seed", type=int, default=Plan.seed)
    parser.add_argument("--workdir", type=Path, default=None, help="logs and state (kept)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the soak; print the table, then the JSON object; 1 if a criterion failed."""
    args = _parse(argv)
    plan = Plan(
        minutes=args.minutes,
        block_s=args.block_seconds,
        rate=args.rate,
        leads=args.leads,
        scrape_s=args.scrape_seconds,
        rss_every_s=min(5.0, args.block_seconds / 4),
        seed=args.seed,
    )
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S", level=logging.WARNING)
    logging.getLogger("bench").setLevel(logging.INFO)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="funnel-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log.info("work directory %s; load average %.2f", workdir, os.getloadavg()[0])
    source = source_version()  # the code measured: read before the run, not after it
    children = Children()
    broker = EmbeddedBroker(log_path=workdir / "broker.log")
    try:
        broker.start()
        outcome = asyncio.run(run_soak(broker.bootstrap, workdir, children, plan))
    except KeyboardInterrupt:
        log.error("interrupted; logs in %s", workdir)
        return 130
    except ChildFailed as exc:
        log.error("the soak could not run: %s (logs in %s)", exc, workdir)
        return 2
    finally:
        children.stop_all()
        broker.stop()
    print(table(outcome, plan.block_s))
    line = json_line(outcome, plan.block_s, source)
    print(line)
    return 0 if json.loads(line)["passed"] else 1


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


if __name__ == "__main__":
    raise SystemExit(main())
