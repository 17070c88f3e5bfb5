"""The swappable pieces of an extrapolation event, each in its own module; this one re-exports them all.

Each piece is a small object with one job; any callable with the same signature works in its place.

- **When**: :mod:`effopt.schedules` (:class:`PowersOfTwo`, :class:`Every`, :class:`Backoff`, :class:`Never`).
- **What moves**: :mod:`effopt.groups` (:func:`extrapolation_groups`, :data:`PAPER_PATTERN`).
- **Which direction**: :mod:`effopt.directions` (:class:`Accumulated`, :class:`LowRank`).
- **How far**: :mod:`effopt.searches` (:class:`Greedy`, :class:`Quadratic`, :class:`Fixed`), and the line they search.
- **How long the steps between events are** (optional): :mod:`effopt.step_scale` (:class:`StepScale`).
- **What the probe may cost** (optional): :mod:`effopt.budget` (:class:`ProbeBudget`).
- **What must not get worse** (optional): :mod:`effopt.guard` (:class:`Guard`).
"""

from __future__ import annotations

from .budget import ProbeBudget
from .directions import Accumulated, LowRank
from .groups import PAPER_PATTERN, extrapolation_groups
from .guard import Guard
from .schedules import Backoff, Every, Never, PowersOfTwo
from .searches import Fixed, Greedy, Quadratic
from .step_scale import StepScale

__all__ = [
    "PAPER_PATTERN",
    "Accumulated",
    "Backoff",
    "Every",
    "Fixed",
    "Greedy",
    "Guard",
    "LowRank",
    "Never",
    "PowersOfTwo",
    "ProbeBudget",
    "Quadratic",
    "StepScale",
    "extrapolation_groups",
]
