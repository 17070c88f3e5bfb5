"""AlgoPerf's fixed target, for a task whose targets come from `adamw-tuned` (Task.target_from; the real model's two
tasks, benchmarks/real.py): per case (instance, seed) and measure, the start plus 95% (yardstick.GAIN_SHARE) of the
gain that adamw-tuned, the best tuned AdamW, made by the end of its budget (yardstick.targets_of on its run: the same
rule, conditioning included, as adamw's target elsewhere). Every row of the task is scored by its steps and seconds to
that target, whatever lr it starts from; a row that does not get there is `never`. The task's other figures stay the
paper's view: speed-ups over `adamw` at the task's lr, to adamw's own target.

The best peer, per task and measure: among REAL_PEERS (adamw-tuned with its sweep free, untuned Prodigy, schedule-free
AdamW at the task's lr), the fewest steps to the fixed target (median over cases), and apart from it the fewest
seconds; a row's `share` of it is its own median over the peer's (at most 0.8 is the real model's first goal).

`case_fields` gives a case's figures (benchmarks.summary adds them to its per_seed entry), `figures` a row's medians,
`best_peer` and `share` the comparison; `fixed_table` (a task's, REPORT.md) and `defaults_table` (both defaults side
by side, REPORT.md and the README) write them.
"""

from __future__ import annotations

import math

from benchmarks.fmt import median_of, na
from benchmarks.race import BASELINE, TUNED
from benchmarks.real import REAL_PEERS, REAL_TASKS, VARIANTS
from benchmarks.yardstick import MEASURES, median_never, reach, reached, spread

#: per measure: the per_seed keys of its fixed target, the steps to it and the seconds to it
FIELDS = {
    "metric": ("fixed_metric_target", "steps_to_fixed_target", "seconds_to_fixed_target"),
    "objective": ("fixed_objective_target", "steps_to_fixed_objective_target", "seconds_to_fixed_objective_target"),
}
SHARE = 0.8  #: the real model's first goal: effopt's steps and seconds at most this share of the best peer's
COLUMNS = (BASELINE, *REAL_PEERS, "effopt", *VARIANTS)  #: the rows of `defaults_table`, in its order


def case_fields(curve: list[dict], targets: dict) -> dict:
    """A case's fixed-target figures: per measure its target (`targets`, yardstick.targets_of of adamw-tuned's run on
    the case) and the run's steps and training seconds to it (None: never, or no target)."""
    out: dict = {}
    for key, higher in MEASURES:
        target_key, steps_key, seconds_key = FIELDS[key]
        steps, seconds = reach(curve, key, targets.get(key), higher)
        out |= {target_key: targets.get(key), steps_key: steps, seconds_key: seconds}
    return out


def figures(cases) -> dict:
    """A row's medians over its cases' per_seed entries: per measure, steps and seconds to the fixed target over the
    cases that have one (never counted as never), with `reached_<steps key>` (k/n) and the median target."""
    cases = list(cases)
    out: dict = {}
    for target_key, steps_key, seconds_key in FIELDS.values():
        targeted = [c for c in cases if c.get(target_key) is not None]
        out[steps_key] = median_never([c[steps_key] for c in targeted])
        out[seconds_key] = median_never([c[seconds_key] for c in targeted])
        out[f"reached_{steps_key}"] = reached([c[steps_key] for c in targeted])
        out[target_key] = median_of([c.get(target_key) for c in cases])
    return out


def is_fixed(methods: dict) -> bool:
    """Whether a task's rows (summary or from_published figures) are scored on the fixed target."""
    return any(f.get("target_from", BASELINE) != BASELINE for f in methods.values())


def best_peer(methods: dict, key: str, peers: tuple[str, ...] = REAL_PEERS) -> tuple[str, float] | None:
    """(the peer row with the fewest `key`, a median to the fixed target, and that figure) among `peers` the task has;
    ties go to the first in `peers`; None where no peer got there."""
    there = [(methods[p][key], k, p) for k, p in enumerate(peers) if methods.get(p, {}).get(key) is not None]
    return None if not there else (min(there)[2], min(there)[0])


def share(ours: float | None, best: tuple[str, float] | None) -> float | None:
    """A row's figure over the best peer's: None where the row never got there; 0 where it did and no peer did."""
    if ours is None:
        return None
    if best is None:
        return 0.0
    return ours / best[1] if best[1] else (1.0 if ours == 0 else math.inf)


def _cell(f: dict, steps_key: str, seconds_key: str, target_key: str) -> tuple[str, str]:
    """A row's steps to the fixed target with [min..max] over cases and k/n, and its seconds."""
    values = [c[steps_key] for c in f["per_seed"].values() if c.get(target_key) is not None]
    if not values:
        return "no target", ""
    median = f[steps_key]
    text = "never" if median is None else f"{median:.0f}"
    bounds = spread(values)
    if bounds:
        text += " [" + "..".join("never" if math.isinf(b) else f"{b:.0f}" for b in bounds) + "]"
    seconds = "never" if f[seconds_key] is None else f"{f[seconds_key]:.1f}"
    return f"{text} {f[f'reached_{steps_key}']}", seconds


def _best_text(methods: dict, steps_key: str, seconds_key: str) -> str:
    steps, seconds = best_peer(methods, steps_key), best_peer(methods, seconds_key)
    if steps is None:
        return "none got there"
    if seconds is not None and seconds[0] == steps[0]:
        return f"{steps[0]}: {steps[1]:.0f} steps, {seconds[1]:.1f} s"
    return f"{steps[0]}: {steps[1]:.0f} steps; " + (
        "none in seconds" if seconds is None else f"{seconds[0]}: {seconds[1]:.1f} s"
    )


def fixed_table(methods: dict) -> list[str]:
    """A task's rows to the fixed target (REPORT.md, after its race table), with each row's share of the best peer's
    steps and seconds, and the best peer; nothing for a task scored on adamw's target."""
    if not is_fixed(methods):
        return []
    present = [p for p in REAL_PEERS if p in methods]
    rows = [
        "| method | lr | steps to the fixed target | seconds | of the best peer's (steps, seconds) | steps to the "
        "fixed objective target | seconds | of the best peer's (steps, seconds) | final retained |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, f in methods.items():
        cells = [method, "free" if f["lr"] is None else f"{f['lr']:.3g}"]
        for target_key, steps_key, seconds_key in FIELDS.values():
            steps, seconds = _cell(f, steps_key, seconds_key, target_key)
            of = [
                "never" if f[k] is None else na(share(f[k], best_peer(methods, k)), 2) for k in (steps_key, seconds_key)
            ]
            cells += [steps, seconds, ", ".join(of)]
        cells.append(na(f["retained_final"], 3))
        rows.append("| " + " | ".join(cells) + " |")
    first = next(iter(methods.values()))
    return [
        f"To AlgoPerf's fixed target: per case and measure, the start plus 95% of the gain `{TUNED}` made by the end "
        f"of its budget (median metric target {na(first['fixed_metric_target'], 3)}, objective target "
        f"{na(first['fixed_objective_target'], 4)}). Steps to it, median over cases [min..max] and k/n reached, and "
        "the training seconds; a row's share of the best peer's (the fewest among "
        f"{', '.join(REAL_PEERS)} at this lr; the real model's first goal asks effopt for at most {SHARE:g}). Best "
        f"peer, to the metric's target: {_best_text(methods, *FIELDS['metric'][1:])}; to the objective's: "
        f"{_best_text(methods, *FIELDS['objective'][1:])}"
        + (
            ""
            if len(present) == len(REAL_PEERS)
            else f" (peers not run: {', '.join(sorted(set(REAL_PEERS) - set(present)))})"
        )
        + ".",
        "",
        *rows,
        "",
    ]


def _task_lr(methods: dict) -> str:
    lrs = [f["lr"] for m, f in methods.items() if m in (BASELINE, "effopt") and f.get("lr") is not None]
    return f"{lrs[0]:g}" if lrs else "?"


def defaults_table(summary: dict, link: str = "{task}") -> list[str]:
    """The real model from both defaults, to the fixed target: per task (default lr) and measure, each row's steps /
    seconds (k/n reached), the best peer and effopt's share of its steps and seconds; a task or row the run lacks is
    `not run`. Nothing where the summary holds no real task."""
    if not any(task in summary for task in REAL_TASKS):
        return []
    head = ["from the default", "to the fixed target of", *COLUMNS, "best peer (steps; seconds)", "effopt / best peer"]
    rows = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for task in REAL_TASKS:
        methods = summary.get(task, {})
        for measure, (_, steps_key, seconds_key) in FIELDS.items():
            label = f"{_task_lr(methods)} ({link.format(task=task)})" if methods else f"{task}: not run"
            cells = [label, measure]
            for method in COLUMNS:
                f = methods.get(method)
                if f is None or steps_key not in f:
                    cells.append("not run")
                    continue
                steps = "never" if f[steps_key] is None else f"{f[steps_key]:.0f}"
                seconds = "" if f[seconds_key] is None else f" / {f[seconds_key]:.0f} s"
                k_of_n = f[f"reached_{steps_key}"]
                cells.append("no target" if k_of_n.endswith("/0") else f"{steps}{seconds}, {k_of_n}")
            ours = methods.get("effopt", {})
            cells.append(_best_text(methods, steps_key, seconds_key) if methods else "-")
            of = (
                [
                    "never" if ours[k] is None else na(share(ours[k], best_peer(methods, k)), 2)
                    for k in (steps_key, seconds_key)
                ]
                if steps_key in ours
                else ["-"]
            )
            cells.append(" / ".join(of))
            rows.append("| " + " | ".join(cells) + " |")
    return rows
