"""How the benchmark's figures are written in its tables and goal rows (benchmarks.tables, benchmarks.sections,
benchmarks.readme, benchmarks.goals)."""

from __future__ import annotations

import statistics


def median_of(values: list) -> float | None:
    """The median of the values that are not None; None if there are none."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=2, suffix=""):
    return "never" if value is None else f"{value:.{digits}f}{suffix}"


def na(value, digits=3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def times(value) -> str:
    return "n/a" if value is None else "never" if value == 0 else f"{value:.2f}x"


def speedups(values: list) -> str:
    """The median speed-up over seeds [min..max]; `(k/n defined)` where the reference missed on some seeds."""
    finite = [v for v in values if v is not None]
    if not finite:
        return "n/a"
    text = times(statistics.median(finite))
    if len(finite) > 1:
        text += f" [{times(min(finite))}..{times(max(finite))}]"
    if len(finite) < len(values):
        text += f" ({len(finite)}/{len(values)} defined)"
    return text
