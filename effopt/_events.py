"""What an extrapolation event records: the items of :attr:`effopt.ExtrapolatingOptimizer.events`."""

from __future__ import annotations

from typing import TypedDict


class Event(TypedDict):
    """One event, as :attr:`effopt.ExtrapolatingOptimizer.events` holds it (a plain dict with these keys)."""

    step: int  # the base step the event followed
    multipliers: list[float]  # each point probed, in order, the baseline m = 1 first
    values: list[float]  # the probe's value at each, in its own units
    guard: list[list[float]]  # the guard's [m, value] pairs, in order; empty without a guard
    accepted: float  # the multiplier the weights ended at
    seconds: float  # the event's wall time
    reason: str  # empty, or why the event ended at m = 1
    stability: float | None  # cosine of this event's accumulated update with the previous event's (None: unknown)


def new_event(step: int) -> Event:
    """The record of an event after base step ``step``, before it runs: no point probed yet, ``m = 1`` accepted."""
    return {
        "step": step,
        "multipliers": [],
        "values": [],
        "guard": [],
        "accepted": 1.0,
        "seconds": 0.0,
        "reason": "",
        "stability": None,
    }
