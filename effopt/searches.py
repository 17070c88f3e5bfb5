"""How far: a search is ``search(line) -> multiplier``; any callable with that signature works in place of these.

The weights lie on the line ``theta(m) = theta_1 + (m - 1) * delta``, where ``theta_1`` are the weights the base step
produced, so ``m = 1`` is where the step left them and, for the accumulated update,
``theta(m) = anchor + m * (theta_1 - anchor)``. ``line.value(m)`` moves the weights there and returns the probe's
*score* (lower is better whatever the probe's mode), ``line.improves(score, best)`` applies the tolerance. A search
with ``needs_probe = False`` never calls ``line.value``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ._checks import _positive

if TYPE_CHECKING:
    from ._line import _Line

__all__ = ["Fixed", "Greedy", "Quadratic"]


class Greedy:
    """EffOPD's search: try the multipliers in order, keep each one that improves on the best so far, stop at the first
    that does not, and return the best.

    Args:
        multipliers: candidates tried in order (default ``(3, 5, 7, 9, 11)``, as published).
    """

    needs_probe = True

    def __init__(self, multipliers: Sequence[float] = (3, 5, 7, 9, 11)) -> None:
        if isinstance(multipliers, (str, bytes)) or not isinstance(multipliers, Iterable):
            raise ValueError(f"multipliers: expected a sequence of positive numbers, got {multipliers!r}")  # noqa: TRY004
        self.multipliers = tuple(_positive("multipliers", m) for m in multipliers)
        if not self.multipliers:
            raise ValueError("multipliers: expected at least one multiplier")

    def __call__(self, line: _Line) -> float:
        best_m, best = 1.0, line.value(1.0)
        for m in self.multipliers:
            score = line.value(m)
            if not line.improves(score, best):
                break
            best_m, best = m, score
        return best_m

    def __repr__(self) -> str:
        return f"Greedy({self.multipliers})"


class Quadratic:
    """A line search for a smooth probe (a validation loss): fit a parabola along the line and go to its minimum.

    Probes ``m = 1`` and ``m = first``; then ``m = 2 * first - 1`` if ``first`` improved, else ``(1 + first) / 2``;
    fits a parabola through the three points and, where it is convex, probes its vertex (clipped to
    ``[min_multiplier, max_multiplier]``). Returns the best point probed: at most four probe calls per event, against
    up to six for :class:`Greedy`, and the multiplier is continuous.

    Args:
        first: the first multiplier tried (default 3).
        max_multiplier: the largest multiplier returned (default 16).
        min_multiplier: the smallest (default 0.5: the search may also step back toward the anchor).
    """

    needs_probe = True

    def __init__(self, first: float = 3.0, max_multiplier: float = 16.0, min_multiplier: float = 0.5) -> None:
        self.first = _positive("first", first)
        self.max_multiplier = _positive("max_multiplier", max_multiplier)
        self.min_multiplier = _positive("min_multiplier", min_multiplier)
        if not self.min_multiplier < 1 < self.first <= self.max_multiplier:
            raise ValueError(
                "first, min_multiplier, max_multiplier: expected min_multiplier < 1 < first <= max_multiplier, got "
                f"{min_multiplier!r}, {first!r}, {max_multiplier!r}"
            )

    def __call__(self, line: _Line) -> float:
        points = {1.0: line.value(1.0)}
        points[self.first] = line.value(self.first)
        second = 2 * self.first - 1 if points[self.first] < points[1.0] else (1 + self.first) / 2
        second = min(second, self.max_multiplier)
        if second not in points:
            points[second] = line.value(second)
        vertex = _parabola_vertex(points)
        if vertex is not None:
            vertex = min(max(vertex, self.min_multiplier), self.max_multiplier)
            if all(abs(vertex - m) > 1e-3 * max(1.0, abs(m)) for m in points):
                points[vertex] = line.value(vertex)
        best_m = min(points, key=points.__getitem__)
        return best_m if line.improves(points[best_m], points[1.0]) else 1.0

    def __repr__(self) -> str:
        return f"Quadratic(first={self.first}, max_multiplier={self.max_multiplier})"


def _parabola_vertex(points: dict[float, float]) -> float | None:
    """Minimum of the parabola through three (m, score) points, or None where it is not convex."""
    if len(points) < 3:
        return None
    (x0, y0), (x1, y1), (x2, y2) = sorted(points.items())[:3]
    # Divided differences: y = y0 + a (x - x0) + c (x - x0)(x - x1); convex where c > 0.
    a = (y1 - y0) / (x1 - x0)
    c = ((y2 - y1) / (x2 - x1) - a) / (x2 - x0)
    if not c > 0:
        return None
    return (x0 + x1) / 2 - a / (2 * c)


class Fixed:
    """A probe-free rule: always the same multiplier (ExPO-style extrapolation by a fixed factor).

    Args:
        multiplier: the multiplier every event moves to (default 2).
    """

    needs_probe = False

    def __init__(self, multiplier: float = 2.0) -> None:
        self.multiplier = _positive("multiplier", multiplier)

    def __call__(self, line: _Line) -> float:
        return self.multiplier

    def __repr__(self) -> str:
        return f"Fixed({self.multiplier})"
