"""The swappable pieces of an extrapolation event: when, what moves, which direction, how far.

Each piece is a small object with one job; any callable with the same signature works in its place.

- **When** (a *schedule*): ``schedule(step) -> bool`` is asked after every counted optimizer step ``step = 1, 2, ...``.
  A schedule with ``observe(step, accepted)`` hears each event's outcome; one with ``state_dict()`` and
  ``load_state_dict()`` has that state kept in the optimizer's checkpoint.
- **What moves**: param groups with ``extrapolate=True`` (the default); :func:`extrapolation_groups` builds groups from
  parameter names with the paper's attention/MLP rule.
- **Which direction** (a *direction*): ``direction(deltas, step)`` may rewrite, in place, the accumulated updates
  ``delta = theta - anchor`` of one chunk of tensors (identity for :class:`Accumulated`).
- **How far** (a *search*): ``search(line) -> multiplier``. The weights lie on the line
  ``theta(m) = theta_1 + (m - 1) * delta``, where ``theta_1`` are the weights the base step produced, so ``m = 1`` is
  where the step left them and, for the accumulated update, ``theta(m) = anchor + m * (theta_1 - anchor)``.
  ``line.value(m)`` moves the weights there and returns the probe's *score* (lower is better whatever the probe's
  mode), ``line.improves(score, best)`` applies the tolerance. A search with ``needs_probe = False`` never calls
  ``line.value``.
- **What the probe may cost** (a *budget*, optional): :class:`ProbeBudget` tells the schedule that an event whose
  saving did not cover its probe calls' cost did not pay, and postpones events while the probe's time, net of what
  the events saved, is past a share of the time.
- **What must not get worse** (a *guard*, optional): ``guard(line, m) -> multiplier`` may shorten the search's choice;
  ``line.guard(m)`` moves the weights to ``theta(m)`` and returns the guard probe's score (:class:`Guard`).
"""

from __future__ import annotations

import math
import re
import statistics
from collections import deque
from collections.abc import Iterable, Sequence

import torch

from ._line import _sum_over_ranks

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


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    return float(value)


# --- When -------------------------------------------------------------------------------------------------------------


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

    def state_dict(self) -> dict:
        return {"next_step": self.next_step, "wait": self.wait}

    def load_state_dict(self, state: dict) -> None:
        self.next_step, self.wait = int(state["next_step"]), int(state["wait"])

    def __repr__(self) -> str:
        return f"Backoff(interval={self.interval}, max_interval={self.max_interval}, pays_above={self.pays_above})"


class Never:
    """No events: the wrapper then equals its base optimizer bit for bit."""

    def __call__(self, step: int) -> bool:
        return False

    def __repr__(self) -> str:
        return "Never()"


# --- How long the steps between events are ----------------------------------------------------------------------------


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

    def __init__(self, power: float = 0.5, low: float = 1.0, high: float = 4.0, start: int = 10) -> None:
        self.power, self.low, self.high = _positive("power", power), _positive("low", low), _positive("high", high)
        if not self.low <= 1.0 <= self.high:
            raise ValueError(f"low, high: expected low <= 1 <= high, got {low!r}, {high!r}")
        if isinstance(start, bool) or not isinstance(start, int) or start < 1:
            raise ValueError(f"start: expected a positive int, got {start!r}")
        self.start = start
        self.factor = 1.0

    def observe(self, step: int, accepted: float) -> None:
        if step >= self.start:
            self.factor = min(max(self.factor * accepted**self.power, self.low), self.high)

    def state_dict(self) -> dict:
        return {"factor": self.factor}

    def load_state_dict(self, state: dict) -> None:
        self.factor = float(state["factor"])

    def __repr__(self) -> str:
        return f"StepScale(power={self.power}, low={self.low}, high={self.high}, start={self.start})"


# --- What moves -------------------------------------------------------------------------------------------------------

#: Parameter names that EffOPD's code extrapolates: attention and MLP weights. Embeddings, lm_head and norms stay.
PAPER_PATTERN = r"attn|attention|q_proj|k_proj|v_proj|o_proj|mlp|ffn|gate_proj|up_proj|down_proj"


def extrapolation_groups(model: torch.nn.Module, pattern: str = PAPER_PATTERN, **group_options) -> list[dict]:
    """Param groups for a base optimizer: parameters whose name matches ``pattern`` get ``extrapolate=True``.

    Frozen parameters (``requires_grad=False``) are left out. ``group_options`` (``lr``, ``weight_decay``, ...) go
    into both groups. Example::

        base = torch.optim.AdamW(extrapolation_groups(model), lr=1e-5)
        opt = ExtrapolatingOptimizer(base, probe=validation_loss)
    """
    regex = re.compile(pattern)
    chosen, rest = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (chosen if regex.search(name) else rest).append(param)
    if not chosen:
        raise ValueError(f"pattern: no trainable parameter name of the model matches {pattern!r}")
    groups = [{"params": chosen, "extrapolate": True, **group_options}]
    if rest:
        groups.append({"params": rest, "extrapolate": False, **group_options})
    return groups


# --- Which direction --------------------------------------------------------------------------------------------------


class Accumulated:
    """The update accumulated since the anchor, ``theta - anchor``, as published."""

    def __call__(self, deltas: list[torch.Tensor], step: int) -> None:
        pass

    def __repr__(self) -> str:
        return "Accumulated()"


class LowRank:
    """The accumulated update of each weight matrix projected onto its top-``rank`` singular directions.

    OPD and RL updates are reported to be low-rank; keeping only the dominant subspace drops the noise that a large
    multiplier would otherwise amplify. Tensors with fewer than two dimensions (biases, norms) keep their plain update;
    a tensor of more than two dimensions is treated as a matrix ``(shape[0], -1)``. Uses the randomized
    ``torch.svd_lowrank`` (cost ``O(rows * cols * (rank + oversample) * (niter + 1))`` per matrix, at events only)
    seeded from the step under ``torch.random.fork_rng``, so it is reproducible and never touches the training RNG.
    Under FSDP each rank projects its own shard, which is not the projection of the full matrix.

    Args:
        rank: singular directions kept per matrix (default 1).
        oversample: extra random directions for accuracy (default 4).
        niter: power iterations (default 2).
    """

    def __init__(self, rank: int = 1, oversample: int = 4, niter: int = 2) -> None:
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank: expected a positive int, got {rank!r}")
        self.rank, self.oversample, self.niter = rank, oversample, niter

    def __call__(self, deltas: list[torch.Tensor], step: int) -> None:
        devices = sorted({d.device.index for d in deltas if d.device.type == "cuda"})
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(step)
            for delta in deltas:
                if delta.dim() < 2 or min(delta.shape[0], delta[0].numel()) <= self.rank:
                    continue
                matrix = delta.reshape(delta.shape[0], -1).float()
                q = min(self.rank + self.oversample, *matrix.shape)
                u, s, v = torch.svd_lowrank(matrix, q=q, niter=self.niter)
                k = self.rank
                delta.copy_(((u[:, :k] * s[:k]) @ v[:, :k].T).reshape(delta.shape))

    def __repr__(self) -> str:
        return f"LowRank(rank={self.rank})"


# --- How far ----------------------------------------------------------------------------------------------------------


class Greedy:
    """EffOPD's search: try the multipliers in order, keep each one that improves on the best so far, stop at the first
    that does not, and return the best.

    Args:
        multipliers: candidates tried in order (default ``(3, 5, 7, 9, 11)``, as published).
    """

    needs_probe = True

    def __init__(self, multipliers: Sequence[float] = (3, 5, 7, 9, 11)) -> None:
        if isinstance(multipliers, (str, bytes)) or not isinstance(multipliers, Iterable):
            raise ValueError(f"multipliers: expected a sequence of positive numbers, got {multipliers!r}")
        self.multipliers = tuple(_positive("multipliers", m) for m in multipliers)
        if not self.multipliers:
            raise ValueError("multipliers: expected at least one multiplier")

    def __call__(self, line) -> float:
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

    def __call__(self, line) -> float:
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
        best_m = min(points, key=points.get)
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

    def __call__(self, line) -> float:
        return self.multiplier

    def __repr__(self) -> str:
        return f"Fixed({self.multiplier})"


# --- What the probe may cost ------------------------------------------------------------------------------------------


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

    The default share, 0.15, keeps the seconds' speed-up within 0.85 of the steps' one where events do not pay: a
    run that spends a share ``s`` of its time in probe calls takes ``1 / (1 - s)`` of its probe-free time.

    Args:
        cost: one probe call's cost in base steps, declared (for example ``5`` for a probe that samples five
            batches' worth of rollouts): the events are then as deterministic as the probe. None (the default):
            measured after each event, as the median seconds per probe call of the last 8 events over the median
            seconds between the last 32 base steps (an event's own seconds left out), averaged over ranks under
            ``torch.distributed`` so that every rank takes the same decisions; until the first event has run nothing
            is known and nothing waits. A measured cost depends on the machine's timing, so two runs may differ in
            their events.
        share: the largest share of the counted time that probe calls may take, in (0, 1) (default 0.15); None: no
            bound (rule 1 alone).

    Counts (probe calls, the savings, the last event's step) are part of the checkpoint; measured seconds
    are not.
    """

    def __init__(self, cost: float | None = None, share: float | None = 0.15) -> None:
        self.cost = None if cost is None else _positive("cost", cost)
        if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float))
                                  or not 0 < share < 1):
            raise ValueError(f"share: expected a number in (0, 1) or None, got {share!r}")
        self.share = None if share is None else float(share)
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
        total, count = _sum_over_ranks([local or 0.0, 0.0 if local is None else 1.0])
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

    def observe(self, step: int, event: dict) -> float:
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

    def state_dict(self) -> dict:
        return {"calls": self.calls, "last_event": self.last_event, "saved": self.saved}

    def load_state_dict(self, state: dict) -> None:
        self.calls, self.last_event, self.saved = int(state["calls"]), int(state["last_event"]), float(state["saved"])

    def __repr__(self) -> str:
        return f"ProbeBudget(cost={self.cost}, share={self.share})"


# --- What must not get worse ------------------------------------------------------------------------------------------


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

    def __init__(self, probe, budget: float, mode: str = "min", shrink: int = 2) -> None:
        if not callable(probe):
            raise TypeError(f"probe: expected a callable returning a float, got {type(probe).__name__}")
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not (math.isfinite(budget)
                                                                                     and budget >= 0):
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

    def __call__(self, line, m: float) -> float:
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
            if not line.improves(line.value(m), baseline):
                break
        return 1.0

    def state_dict(self) -> dict:
        return {"reference": self.reference}

    def load_state_dict(self, state: dict) -> None:
        self.reference = None if state["reference"] is None else float(state["reference"])

    def __repr__(self) -> str:
        return f"Guard(budget={self.budget}, mode={self.mode!r}, shrink={self.shrink})"
