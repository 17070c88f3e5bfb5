"""How the benchmark reads a learning curve: the target, the crossing that counts, and medians over seeds with misses.

The rules, stated once (REPORT.md quotes them):

- Curves are read smoothed: at each evaluation point, the mean of it and the ``SMOOTH - 1`` points before it (fewer at
  the start). One point of exact match on 512 examples is +-1.7 points of noise; three of them, +-1.
- Target, per task, instance, seed and measure: the start plus ``GAIN_SHARE`` of the gain that the baseline (AdamW at
  the task's lr) made by the end of its budget, its end being the mean of its last ``SMOOTH`` points. The same rule for
  the task metric (higher is better) and for the objective (a validation loss, lower is better). Where the baseline
  made no gain, there is no target.
- A metric target must be well-conditioned: the baseline's gain at least ``CONDITIONING`` standard errors of the
  metric at the baseline's end (``sqrt(p (1 - p) / n)`` for a proportion p on n eval examples). Below that the target
  sits inside the metric's own noise; the metric has no target on that run and the objective decides.
- Steps to target: the first evaluation point from which the smoothed curve stays at or beyond the target until the end
  of the run. A run that touches the target and falls back has not reached it; one that never stays is ``never``.
- Seconds to target: the training seconds (probes and events included, evaluation excluded) at that same point.
- Modelled seconds, beside the measured ones (which a shared machine makes noisy): steps x the run's plain-step
  seconds (its training seconds outside extrapolation events, per step) + probe calls so far (main probe and guard) x
  its seconds per probe call (the median over its events of an event's seconds per call, the moves included).
- The tuned lr (`adamw-tuned`): from AdamW's lr grid on an instance's first seed, the lr that reaches the baseline's
  target in the fewest steps among those whose final retained skill is within ``RETAINED_TOLERANCE`` of the task
  lr's (`tuned_multiple`).
- Over seeds: the median with misses counted as never (infinitely many steps), shown with ``k/n reached``; per-seed
  speed-ups are the reference's figure over the run's, a miss counting as 0x, then the median.
"""

from __future__ import annotations

import math
import statistics

MEASURES = (("metric", True), ("objective", False))  # (curve key, higher is better)
#: adamw-tuned may cost at most this much of the retained skill (absolute, on a 0..1 exact match) against the task's
#: lr: about twice the noise of a smoothed retained figure on 256 examples.
RETAINED_TOLERANCE = 0.02
GAIN_SHARE = 0.95
SMOOTH = 3
CONDITIONING = 3.0


def smoothed(values: list[float]) -> list[float]:
    """The trailing mean over ``SMOOTH`` points at each point (fewer at the start)."""
    return [statistics.fmean(values[max(0, i - SMOOTH + 1) : i + 1]) for i in range(len(values))]


def tail(curve: list[dict], key: str) -> float | None:
    """Where a curve ends: the mean of its last ``SMOOTH`` values of ``key`` (None where it has none)."""
    values = [p[key] for p in curve if p.get(key) is not None]
    return statistics.fmean(values[-SMOOTH:]) if values else None


def conditioned(baseline: list[dict], key: str, examples: int | None) -> bool:
    """Whether the baseline's gain in a proportion measured on `examples` items is at least ``CONDITIONING`` standard
    errors of that proportion at the baseline's end (True where `examples` is None: nothing to check)."""
    start, end = baseline[0].get(key), tail(baseline, key)
    if examples is None or start is None or end is None:
        return True
    return abs(end - start) >= CONDITIONING * math.sqrt(max(end * (1 - end), 0.0) / examples)


def target(baseline: list[dict], key: str, higher: bool = True, examples: int | None = None) -> float | None:
    """The start plus ``GAIN_SHARE`` of the baseline's gain to its tail; None where it has no such measure, made no
    gain in the direction of better (there is then nothing to race to), or, for a proportion on `examples` items, its
    gain is not well-conditioned (`conditioned`)."""
    start, end = baseline[0].get(key), tail(baseline, key)
    if start is None or end is None or not (end > start if higher else end < start):
        return None
    if not conditioned(baseline, key, examples):
        return None
    return start + GAIN_SHARE * (end - start)


def reach(curve: list[dict], key: str, goal: float | None, higher: bool = True) -> tuple[int | None, float | None]:
    """(step, training seconds) of the first point from which the smoothed curve stays at or beyond ``goal``;
    (None, None) if it never stays there or there is no goal."""
    points = [p for p in curve if p.get(key) is not None]
    if goal is None or not points:
        return None, None
    beyond = [(v >= goal) if higher else (v <= goal) for v in smoothed([p[key] for p in points])]
    if not beyond[-1]:
        return None, None
    first = len(beyond) - 1
    while first > 0 and beyond[first - 1]:
        first -= 1
    return points[first]["step"], points[first]["train_seconds"]


def median_never(values: list[float | None]) -> float | None:
    """The median with None as never (infinite); None if the median itself is never."""
    if not values:
        return None
    middle = statistics.median([math.inf if v is None else v for v in values])
    return None if math.isinf(middle) else middle


def ratio(reference: float | None, value: float | None) -> float | None:
    """``reference / value``: how many times faster the run got there. 0 if only the run missed (it never got
    there), None if the reference missed (no speed-up is defined)."""
    if reference is None:
        return None
    if value is None:
        return 0.0
    if value == 0:  # there at the start: as fast as can be measured, and as fast as a reference also there
        return 1.0 if reference == 0 else math.inf
    return reference / value


def reached(values: list) -> str:
    return f"{sum(v is not None for v in values)}/{len(values)}"


def spread(values: list[float | None]) -> tuple[float, float] | None:
    """(min, max) with never as infinity, or None for fewer than two values."""
    if len(values) < 2:
        return None
    finite = [math.inf if v is None else v for v in values]
    return min(finite), max(finite)


def probe_calls(event: dict) -> int:
    """The probe calls one extrapolation event made: the main probe's and the guard's."""
    return len(event.get("values", ())) + len(event.get("guard", ()))


def probe_bill(curve: list[dict], events: list[dict]) -> dict:
    """What a run's probes cost it: `probe_share` (of its training seconds), `probe_calls_per_100_steps`, and the
    clock model's two figures, `step_seconds` and `probe_call_seconds` (see the module's rules)."""
    total, steps = curve[-1]["train_seconds"], curve[-1]["step"]
    in_events = sum(e.get("seconds", 0.0) for e in events)
    per_call = [e.get("seconds", 0.0) / probe_calls(e) for e in events if probe_calls(e)]
    return {
        "probe_share": in_events / total if total else 0.0,
        "probe_calls_per_100_steps": 100 * sum(map(probe_calls, events)) / steps if steps else 0.0,
        "step_seconds": (total - in_events) / steps if steps else 0.0,
        "probe_call_seconds": statistics.median(per_call) if per_call else 0.0,
    }


def modelled_seconds(step: int | None, events: list[dict], bill: dict) -> float | None:
    """The clock model's training seconds at `step` (None for never)."""
    if step is None:
        return None
    calls = sum(probe_calls(e) for e in events if e["step"] <= step)
    return step * bill["step_seconds"] + calls * bill["probe_call_seconds"]


def targets_of(baseline: dict) -> dict:
    """{measure: target} of a baseline run (a dict with `curve` and, for a proportion, `metric_examples`)."""
    examples = baseline.get("metric_examples")
    return {
        key: target(baseline["curve"], key, higher, examples if key == "metric" else None) for key, higher in MEASURES
    }


def tuned_multiple(
    first_seed: dict[str, dict], baseline: str = "adamw", tolerance: float = RETAINED_TOLERANCE
) -> float:
    """The lr multiple a user would pick from AdamW's grid on one seed: among the grid points whose final retained
    skill is within `tolerance` (RETAINED_TOLERANCE) of the task lr's, the one that reaches the task-lr run's target in the fewest
    steps (ties: the smaller lr); the objective's target where the metric's is ill-conditioned (`conditioned`).
    `first_seed` maps `baseline` and `<baseline>-<k>x` to runs (dicts with `curve` and `lr_multiple`)."""
    targets = targets_of(first_seed[baseline])
    key, higher = ("metric", True) if targets["metric"] is not None else ("objective", False)
    base = first_seed[baseline]["curve"]
    floor = tail(base, "retained")
    best = None
    for run in sorted(first_seed.values(), key=lambda r: r["lr_multiple"]):
        kept = tail(run["curve"], "retained")
        if floor is not None and (kept is None or kept < floor - tolerance):
            continue
        steps, _ = reach(run["curve"], key, targets[key], higher)
        if steps is not None and (best is None or steps < best[0]):
            best = (steps, run["lr_multiple"])
    return 1.0 if best is None else best[1]


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):  # ties share their mean rank
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in order[i : j + 1]:
            ranks[k] = (i + j) / 2
        i = j + 1
    return ranks


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation (None below three points or when one side is constant)."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return statistics.correlation(_ranks(x), _ranks(y))
