"""The ``funnel`` command line (interface.md): argument parsing and the process bodies."""

from stream.cli.commands import build_parser, main

__all__ = ["build_parser", "main"]
