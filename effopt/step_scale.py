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
    ``[low, high]``, and the wrapper multiplies the selected groups' learning rate by it inside each base step.

    The default takes each event's evidence whole (``power = 1``) and sets no ceiling (``high = None``): the steps
    after an event are as long as that event says the steps before it should have been, and the next events say
    whether that overshoots (an accepted ``m < 1`` shrinks the factor by ``m``; the search bounds any one event's
    change to its own range, ``[0.5, 16]`` for :class:`Quadratic`). So a run started at an lr 30 times too small
    reaches the tuned lr's region in a few events, and one started near it stays near it. ``low = 1`` never steps
    slower than the lr the user chose. The event after the first base step leaves the factor alone (``start = 2``):
    one Adam step is as long as the lr whatever the gradient, so how far it pays to go along it says how far the
    direction holds, not how long a step should be.

    Measured (``make bench``, ``make real``; docs/how-it-works.md): from TRL's default lr 1e-6 on SmolLM2-135M the
    factor reaches about 40 within 7 steps; the older rule (``power=0.5, high=4, start=10``, the square root of each
    event from step 10, at most 4x) kept most of that evidence out. A larger effective lr is what costs retained
    skill: guard what must be kept (:class:`Guard`) or cap the factor (``high=``) where that matters.

    Args:
        power: how much of each event's multiplier the factor takes on (default 1: all of it).
        low: the smallest factor (default 1).
        high: the largest factor (default None: no ceiling; ``high=1`` keeps the lr as given).
        start: the first step whose event moves the factor (default 2).
    """

    def __init__(self, power: float = 1.0, low: float = 1.0, high: float | None = None, start: int = 2) -> None:
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
        high = None if math.isinf(self.high) else self.high
        return f"StepScale(power={self.power}, low={self.low}, high={high}, start={self.start})"
