"""Exact period reports and the north-star plan, recomputed from the input topics.

``report_output`` and ``plan_output`` are what ``funnel report`` and ``funnel plan`` print;
``build_report`` (over the ``Facts`` of ``collect``) is the pure model the renderers format.
"""

from stream.report.commands import make_plan, plan_output, report_output, write_output
from stream.report.errors import ReportError
from stream.report.facts import Facts, collect
from stream.report.model import Report, build_report
from stream.report.period import parse_period

__all__ = [
    "Facts",
    "Report",
    "ReportError",
    "build_report",
    "collect",
    "make_plan",
    "parse_period",
    "plan_output",
    "report_output",
    "write_output",
]
