"""How long the steps between events are: :class:`StepScale`, a step size that carries each event's evidence into
the base steps that follow it (``ExtrapolatingOptimizer(step_scale=...)``)."""

from __future__ import annotations

import math
from typing import Any

from ._checks import _positive

__all__ = ["StepScale"]


class StepScale:
    """A step size that persists: the evidence of each event carried into the base steps that follow it.

    An event that accepts ``m`` says that the base steps since the anchor went ``m`` times too short (or, below 1, too
    far) along their own direction. After each event the factor becomes ``factor * m ** power``, kept within
    ``[low, high]``, and the wrapper multiplies the selected groups' learning rate by it inside each base step. With
    ``power = 0.5`` a factor needs two agreeing events to adopt an ``m`` in full, so one noisy event moves it by its
    square root only. The default ``low = 1`` never steps slower than the lr the user chose. Events before step
    ``start`` leave the factor alone: a window of a few steps says how far their direction goes, not how long a step
    should be (after one Adam step, the accepted multiplier is often the search's largest).

    Args:
        power: how much of each event's multiplier the factor takes on (default 0.5).
        low: the smallest factor (default 1).
        high: the largest factor (default 4).
        start: the first step whose event moves the factor (default 10, :class:`Backoff`'s interval).
    """

    def __init__(self, power: float = 0.5, low: float = 1.0, high: float | None = 4.0, start: int = 10) -> None:
        self.power, self.low = _positive("power", power), _positive("low", low)
        self.high = math.inf if high is None else _positive("high", high)
        if not self.low <= 1.0 <= self.high:
            raise ValueError(f"low, high: expected low <= 1 <= high, got {low!r}, {high!r}")
        if isinstance(start, bool) or not isinstance(start, int) or start < 1:
            raise ValueError(f"start: expected a positive int, got {start!r}")
        self.start = start
        self.factor = 1.0

    def observe(self, step: int, accepted: float) -> None:
        if step >= self.start:
            self.factor = min(max(self.factor * accepted**self.power, self.low), self.high)

    def state_dict(self) -> dict[str, float]:
        return {"factor": self.factor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.factor = float(state["factor"])

    def __repr__(self) -> str:
        return f"StepScale(power={self.power}, low={self.low}, high={self.high}, start={self.start})"
