"""The reverse funnel from the north star to each stage's monthly effort (pure arithmetic)."""

from stream.planning.plan import (
    Gap,
    Measured,
    Plan,
    PlanError,
    bottleneck,
    find_gaps,
    north_star_plan,
    reverse_funnel,
)

__all__ = [
    "Gap",
    "Measured",
    "Plan",
    "PlanError",
    "bottleneck",
    "find_gaps",
    "north_star_plan",
    "reverse_funnel",
]
