"""What must not get worse (optional): a guard, ``guard(line, m) -> multiplier``, may shorten the search's choice;
``line.guard(m)`` moves the weights to ``theta(m)`` and returns the guard probe's score (:class:`Guard`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from ._line import _Line

__all__ = ["Guard"]


class Guard:
    """A second probe that no extrapolation may push past a budget: fast, without forgetting what it guards.

    The probe measures what post-training must keep, for example the KL to the starting model on held-out data of a
    skill the model already has. Its value where the first event's base step left the weights is the *reference*;
    an accepted move must keep the probe within ``budget`` of it (at most ``reference + budget`` in mode ``"min"``,
    at least ``reference - budget`` in mode ``"max"``). Where the searched multiplier ``m`` breaks that, the guard
    tries ``1 + (m - 1) / 2`` (which must still beat ``m = 1`` on the main probe), up to ``shrink`` times, and
    otherwise ends the event at ``m = 1``. The base steps themselves are never held back: once they have spent the
    budget, events only ever accept moves that bring the guard back within it.

    A non-finite guard reading ends the event at ``m = 1``, as a non-finite probe value does. Cost: one call at the
    first event, then one per event that moves (more only where the guard binds).

    Args:
        probe: ``probe() -> float`` on what must be kept; called like the main probe (same ``model`` handling).
        budget: how far the probe may move past its reference, in its own units (a number >= 0).
        mode: ``"min"`` if lower guard values are better (a loss, a KL: the default), ``"max"`` (accuracy).
        shrink: how many halvings toward ``m = 1`` a refused multiplier gets (default 2).
    """

    def __init__(self, probe: Callable[[], float], budget: float, mode: str = "min", shrink: int = 2) -> None:
        if not callable(probe):
            raise TypeError(f"probe: expected a callable returning a float, got {type(probe).__name__}")
        if (
            isinstance(budget, bool)
            or not isinstance(budget, (int, float))
            or not (math.isfinite(budget) and budget >= 0)
        ):
            raise ValueError(f"budget: expected a finite number >= 0, got {budget!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
        if isinstance(shrink, bool) or not isinstance(shrink, int) or shrink < 0:
            raise ValueError(f"shrink: expected an int >= 0, got {shrink!r}")
        self.probe, self.budget, self.mode, self.shrink = probe, float(budget), mode, shrink
        self.reference: float | None = None  # the guard's value at the first event, in the probe's units

    def score(self, value: float) -> float:
        """A guard value as a score, lower is better."""
        return value if self.mode == "min" else -value

    def __call__(self, line: _Line, m: float) -> float:
        if self.reference is None:
            raise RuntimeError("Guard: no reference yet (the wrapper reads it before the first search)")
        ceiling = self.score(self.reference) + self.budget
        baseline = line.value(1.0) if self.shrink else None  # before any move: a probe-free search never read it
        for tries in range(self.shrink + 1):
            if m == 1.0 or line.guard(m) <= ceiling:
                return m
            if tries == self.shrink:
                break
            m = 1.0 + (m - 1.0) / 2
            if not line.improves(line.value(m), cast(float, baseline)):  # shrink > 0 here: baseline was read
                break
        return 1.0

    def state_dict(self) -> dict[str, float | None]:
        return {"reference": self.reference}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reference = None if state["reference"] is None else float(state["reference"])

    def __repr__(self) -> str:
        return f"Guard(budget={self.budget}, mode={self.mode!r}, shrink={self.shrink})"
