"""When: schedules, which say after which optimizer steps an extrapolation event runs.

A schedule is ``schedule(step) -> bool``, asked after every counted optimizer step ``step = 1, 2, ...``; any callable
with that signature works in place of these. A schedule with ``observe(step, accepted)`` hears each event's outcome;
one with ``state_dict()`` and ``load_state_dict()`` has that state kept in the optimizer's checkpoint.
"""

from __future__ import annotations

from typing import Any

from ._checks import _positive

__all__ = ["Backoff", "Every", "Never", "PowersOfTwo"]


class PowersOfTwo:
    """Events after steps 1, 2, 4, 8, 16, ... (EffOPD): logarithmic in the length of training."""

    def __call__(self, step: int) -> bool:
        return step > 0 and step & (step - 1) == 0

    def __repr__(self) -> str:
        return "PowersOfTwo()"


class Every:
    """Events after steps ``k, 2k, 3k, ...``; with ``start``, only from step ``start`` on.

    Args:
        k: steps between events (positive int).
        start: first step that may have an event (default ``k``).
    """

    def __init__(self, k: int, start: int | None = None) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k: expected a positive int, got {k!r}")
        self.k, self.start = k, k if start is None else start

    def __call__(self, step: int) -> bool:
        return step >= self.start and step % self.k == 0

    def __repr__(self) -> str:
        return f"Every({self.k}, start={self.start})"


class Backoff:
    """Events that come often while extrapolation pays and back off while it does not.

    The wait between events doubles after every event (1, 2, 4, 8, ... as in :class:`PowersOfTwo`); while events
    accept a move forward (multiplier > ``pays_above``) it is capped at ``interval``, so a run where extrapolation
    pays gets an event every ``interval`` steps; after an event that accepts nothing it may keep doubling up to
    ``max_interval``, so a run where it does not pay spends few probe calls. The wrapper reports each event through
    ``observe`` and keeps ``state_dict()`` in its checkpoint.

    Args:
        interval: the shortest wait once the first events are past (default 10).
        max_interval: the longest wait (default 128).
        pays_above: an event pays if it accepts a multiplier above this (default 1: any move forward). Raise it to
            make short intervals cheap where moves are small: an event costs its probe calls.
    """

    def __init__(self, interval: int = 10, max_interval: int = 128, pays_above: float = 1.0) -> None:
        for name, value in (("interval", interval), ("max_interval", max_interval)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if max_interval < interval:
            raise ValueError(f"max_interval: expected at least interval ({interval}), got {max_interval}")
        self.interval, self.max_interval = interval, max_interval
        self.pays_above = _positive("pays_above", pays_above)
        self.next_step, self.wait = 1, 1

    def __call__(self, step: int) -> bool:
        return step >= self.next_step

    def observe(self, step: int, accepted: float) -> None:
        self.wait = min(2 * self.wait, self.interval if accepted > self.pays_above else self.max_interval)
        self.next_step = step + self.wait

    def state_dict(self) -> dict[str, int]:
        return {"next_step": self.next_step, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.next_step, self.wait = int(state["next_step"]), int(state["wait"])

    def __repr__(self) -> str:
        return f"Backoff(interval={self.interval}, max_interval={self.max_interval}, pays_above={self.pays_above})"


class Never:
    """No events: the wrapper then equals its base optimizer bit for bit."""

    def __call__(self, step: int) -> bool:
        return False

    def __repr__(self) -> str:
        return "Never()"
