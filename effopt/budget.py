"""What the probe may cost (optional): :class:`ProbeBudget` tells the schedule that an event whose saving did not
cover its probe calls' cost did not pay, and postpones events while the probe's time, net of what the events saved, is
past a share of the time."""

from __future__ import annotations

import statistics
from collections import deque
from typing import TYPE_CHECKING, Any

from ._checks import _positive
from ._line import _sum_over_ranks

if TYPE_CHECKING:
    from ._events import Event

__all__ = ["ProbeBudget"]


class ProbeBudget:
    """Spends the probe only where it pays, and never more than a share of the time.

    Time is counted in base steps: a base step costs 1, one probe (or guard) call costs ``cost``. Two rules:

    1. **An event pays if it saved more than it cost.** An event after a window of ``w`` base steps (since the last
       event, or the start) that accepts ``m`` moves the weights as far as ``(m - 1) * w`` more base steps along the
       same update would: it *saved* that many steps (none if ``m <= 1``), and it cost ``calls * cost``. The schedule
       hears ``m`` only if the saving exceeds the cost, otherwise ``1`` (no move): :class:`Backoff` then waits longer
       before the next event, so a costly probe gets longer windows, whose moves are worth more. The step scale and
       the event record always see the real ``m``.
    2. **A bound on what the probe has cost beyond what it saved.** A scheduled event waits while the probe's time
       so far, net of every event's saving, is more than ``share`` of the counted time: it runs once
       ``cost * calls - saved <= share * (steps + cost * calls)``, where ``calls`` counts every probe call so far
       and ``saved`` sums the savings. While events pay for themselves nothing waits; once they stop paying, the
       run spends about ``share`` of its time probing at most. The schedule is asked again after each step, so
       :class:`Backoff` events run late rather than never (:class:`PowersOfTwo` ones, at fixed steps, are skipped).

    What rule 2 bounds, and what it does not: it is checked before each event, so the probe's net time can pass
    ``share`` by one event's calls; and it is net of the savings, which are credited in full and without bound, so
    while events pay the probe may take any share of the time. It keeps a run whose events stop paying from spending
    much more than ``share`` of its time probing; it does not hold the seconds' speed-up to the steps'.

    Args:
        cost: one probe call's cost in base steps, declared (for example ``5`` for a probe that samples five
            batches' worth of rollouts): the events are then as deterministic as the probe. None (the default):
            measured after each event, as the median seconds per probe call of the last 8 events over the median
            seconds between the last 32 base steps (an event's own seconds left out), averaged over ranks under
            ``torch.distributed`` so that every rank takes the same decisions; until the first event has run nothing
            is known and nothing waits. A measured cost depends on the machine's timing, so two runs may differ in
            their events.
        share: the largest share of the counted time that probe calls may take net of the savings, in (0, 1)
            (default 0.15); None: no bound (rule 1 alone).
        process_group: the ranks over which a measured cost is averaged (None: the default group); every rank of it
            must run the optimizer's events.

    The counts (probe calls, the savings, the last event's step) and the measured cost with the timings behind it are
    part of the checkpoint, so a resumed run decides as the interrupted one would have at its next event.
    """

    def __init__(self, cost: float | None = None, share: float | None = 0.15, process_group: Any = None) -> None:
        self.cost = None if cost is None else _positive("cost", cost)
        if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1):
            raise ValueError(f"share: expected a number in (0, 1) or None, got {share!r}")
        self.share = None if share is None else float(share)
        self.process_group = process_group
        self.calls = 0  # probe and guard calls of every event so far
        self.last_event = 0  # the last event's step (the anchor's); 0: the start
        self.saved = 0.0  # base steps the events' moves saved, summed (rule 1)
        self._step_seconds: deque[float] = deque(maxlen=32)
        self._call_seconds: deque[float] = deque(maxlen=8)
        self._measured: float | None = None  # the cost measured at the last event (the same on every rank)
        self._entered: float | None = None  # when the last base step began
        self._event_seconds = 0.0  # seconds of events since then

    def call_cost(self) -> float | None:
        """One probe call's cost in base steps: declared, or as measured at the last event (None before)."""
        return self.cost if self.cost is not None else self._measured

    def _measure(self) -> None:
        """The cost from this rank's timings, averaged over ranks (every rank calls this at every event)."""
        step = statistics.median(self._step_seconds) if self._step_seconds else 0.0
        local = statistics.median(self._call_seconds) / step if self._call_seconds and step > 0 else None
        total, count = _sum_over_ranks([local or 0.0, 0.0 if local is None else 1.0], self.process_group)
        self._measured = total / count if count else None

    def begin_step(self, now: float) -> None:
        """The wrapper's clock: a base step begins at ``now`` (seconds); the time since the previous one, its events'
        seconds left out, is one base step's."""
        if self._entered is not None:
            self._step_seconds.append(max(now - self._entered - self._event_seconds, 0.0))
        self._entered, self._event_seconds = now, 0.0

    def allows(self, step: int) -> bool:
        """Rule 2: whether an event after base step ``step`` keeps the probe's net cost within its share."""
        cost = self.call_cost()
        if self.share is None or cost is None:
            return True
        spent = cost * self.calls
        return spent - self.saved <= self.share * (step + spent)

    def observe(self, step: int, event: Event) -> float:
        """Counts an event; returns the multiplier the schedule should hear (rule 1)."""
        calls = len(event["values"]) + len(event["guard"])
        window, self.last_event = step - self.last_event, step
        self.calls += calls
        self._event_seconds += event["seconds"]
        if calls and event["seconds"] > 0:
            self._call_seconds.append(event["seconds"] / calls)
        if self.cost is None:
            self._measure()
        saved = max(event["accepted"] - 1.0, 0.0) * window
        self.saved += saved
        cost = self.call_cost()
        return event["accepted"] if cost is None or saved > calls * cost else 1.0

    def state_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "last_event": self.last_event,
            "saved": self.saved,
            "measured": self._measured,
            "step_seconds": list(self._step_seconds),
            "call_seconds": list(self._call_seconds),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calls, self.last_event, self.saved = int(state["calls"]), int(state["last_event"]), float(state["saved"])
        measured = state.get("measured")  # absent from checkpoints made before 0.2.0
        self._measured = None if measured is None else float(measured)
        self._step_seconds = deque(map(float, state.get("step_seconds", ())), maxlen=self._step_seconds.maxlen)
        self._call_seconds = deque(map(float, state.get("call_seconds", ())), maxlen=self._call_seconds.maxlen)

    def __repr__(self) -> str:
        return f"ProbeBudget(cost={self.cost}, share={self.share})"
