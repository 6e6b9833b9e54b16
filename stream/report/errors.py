"""The report package's errors (under the project's root, ``FunnelError``)."""

from __future__ import annotations

from stream.errors import FunnelError


class ReportError(FunnelError):
    """A report cannot be made as asked (a bad period, an unwritable output); one line."""
