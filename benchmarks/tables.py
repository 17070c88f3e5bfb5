"""REPORT.md's tables of one task (from its summary, benchmarks.summary): the race (`race_table`), per instance
(`instance_table`), AdamW's lr grid (`grid_table`) and the events (`detail_table`)."""

from __future__ import annotations

import math
import statistics

from benchmarks import yardstick
from benchmarks.fmt import fmt, na, speedups, times
from benchmarks.tasks import BASELINE, TUNED
from benchmarks.yardstick import RETAINED_TOLERANCE, median_never


def lr_text(lr: float | None) -> str:
    return "free" if lr is None else f"{lr:.3g}"


def _lr(f: dict) -> str:
    """A row's lr, or each instance's where they differ (adamw-tuned picks one per instance)."""
    lrs = {c["instance"]: c["lr"] for c in f["per_seed"].values()}
    if len(set(lrs.values())) <= 1:
        return lr_text(f["lr"])
    return ", ".join(f"{lr_text(lr)} ({i})" for i, lr in sorted(lrs.items()))


def _cases(f: dict, key: str) -> list:
    """`key` over the cases that count for it: a metric figure only where the metric had a target (see _figures)."""
    metric = key in ("steps_to_target", "seconds_to_target")
    return [c[key] for c in f["per_seed"].values() if not metric or c["metric_target"] is not None]


def _steps(f: dict, key: str, reached_key: str) -> str:
    """Median steps with the cases' spread and k/n reached, e.g. `90 [60..140] 3/3`."""
    values = _cases(f, key)
    median = median_never(values)
    text = "never" if median is None else f"{median:.0f}"
    bounds = yardstick.spread(values)
    if bounds:
        text += " [" + "..".join("never" if math.isinf(b) else f"{b:.0f}" for b in bounds) + "]"
    untargeted = "" if len(values) == f["cases"] else f" ({len(values)}/{f['cases']} with a target)"
    return f"{text} {f[reached_key]}{untargeted}"


def _seconds(f: dict, key: str) -> str:
    value = median_never(_cases(f, key))
    return "never" if value is None else f"{value:.1f}"


def race_table(methods: dict) -> str:
    objective = any(f["objective_target"] is not None for f in methods.values())
    retained = any(f["retained_final"] is not None for f in methods.values())
    head = ["method", "lr", "steps to target", "seconds"]
    if objective:
        head += ["steps to objective target", "seconds"]
    head += ["final metric"] + (["final objective"] if objective else []) + (["final retained"] if retained else [])
    head += ["speed-up vs adamw (steps)", "(seconds)", "(modelled seconds)"]
    head += (["speed-up vs adamw (objective)"] if objective else []) + ["speed-up vs adamw-tuned (steps)"]
    head += ["probe share of training seconds", "probe calls per 100 steps"]
    rows = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for method, f in methods.items():
        cells = [method, _lr(f), _steps(f, "steps_to_target", "reached"), _seconds(f, "seconds_to_target")]
        if objective:
            cells += [
                _steps(f, "steps_to_objective_target", "reached_objective"),
                _seconds(f, "seconds_to_objective_target"),
            ]
        cells.append(na(f["final_metric"], 3))
        if objective:
            cells.append(na(f["final_objective"], 3))
        if retained:
            cells.append(na(f["retained_final"], 3))
        cells += [
            speedups(f["speedup_steps_per_seed"]),
            speedups(f["speedup_seconds_per_seed"]),
            speedups(f["speedup_modelled_seconds_per_seed"]),
        ]
        if objective:
            cells.append(speedups(f["speedup_objective_per_seed"]))
        cells += [
            times(f["speedup_steps_vs_tuned"]),
            f"{f['probe_share']:.0%}",
            f"{f['probe_calls_per_100_steps']:.1f}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def instance_table(methods: dict) -> list[str]:
    """Per instance: where it starts, what AdamW gains there, and each method's speed-up over its seeds."""
    base = methods.get(BASELINE)
    if base is None or len(base["per_instance"]) < 2:
        return []
    rows = [
        "| instance | start metric | start retained | adamw's gain (metric targets well-conditioned) | method | lr "
        "| speed-up in steps (decisive) | to the objective | in seconds | vs adamw-tuned | final retained |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for instance, b in base["per_instance"].items():
        for method, f in methods.items():
            if method == BASELINE or instance not in f["per_instance"]:
                continue
            i = f["per_instance"][instance]
            lrs = sorted({c["lr"] for c in f["per_seed"].values() if str(c["instance"]) == instance}, key=str)
            rows.append(
                f"| {instance} | {na(b['initial_metric'])} | {na(b['initial_retained'])} | "
                f"{na(b['baseline_gain'])} ({b['conditioned']}) | {method} | "
                f"{', '.join(lr_text(lr) for lr in lrs)} | {times(i['speedup_decisive'])} | "
                f"{times(i['speedup_objective'])} | {times(i['speedup_seconds'])} | "
                f"{times(i['speedup_steps_vs_tuned'])} | {na(i['retained_final'])} |"
            )
    return [
        "Per instance (medians over each instance's seeds; the decisive speed-up is the metric's where its target "
        "is well-conditioned, else the objective's):",
        "",
        *rows,
        "",
    ]


def grid_table(methods: dict) -> list[str]:
    grid = {m: f for m, f in methods.items() if m == BASELINE or m.startswith(f"{BASELINE}-") and m[-1] == "x"}
    tuned = methods.get(TUNED)
    if len(grid) < 2 or tuned is None:
        return []
    rows = [
        "| instance | lr | steps to target (its first seed) | steps to objective target | final metric | "
        "final retained | retained at target (that point) | chosen |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    chosen_lr = {c["instance"]: c["lr"] for c in tuned["per_seed"].values()}
    for method, f in sorted(grid.items(), key=lambda kv: kv[1]["lr"]):
        for first in f["per_seed"].values():  # the grid runs on each instance's first seed only
            if method == BASELINE and first["seed"] != min(
                c["seed"] for c in f["per_seed"].values() if c["instance"] == first["instance"]
            ):
                continue
            chosen = "yes" if math.isclose(first["lr"], chosen_lr.get(first["instance"], math.nan)) else ""
            rows.append(
                f"| {first['instance']} | {first['lr']:.3g} ({first['lr'] / f['lr'] * f['lr_multiple']:g}x) | "
                f"{fmt(first['steps_to_target'], 0)} | {fmt(first['steps_to_objective_target'], 0)} | "
                f"{na(first['final_metric'], 3)} | {na(first['retained_final'], 3)} | "
                f"{na(first['retained_at_target'], 3)} | {chosen} |"
            )
    rows = rows[:2] + sorted(rows[2:], key=lambda row: int(row.split("|")[1]))
    extra = [f for m, f in grid.items() if m != BASELINE]
    steps = sum(f["budget_steps"] * f["cases"] for f in extra)
    seconds = sum(f["first_seed_run_seconds"] * f["cases"] for f in extra)
    return [
        f"AdamW's lr grid on each instance's first seed, from which `{TUNED}` is chosen for that instance: the "
        f"fewest steps to the target among the lrs whose final retained skill is within {RETAINED_TOLERANCE} of "
        f"the task lr's. The sweep cost {steps} steps and about {seconds / 60:.1f} minutes of runs (evaluation "
        f"included) beyond the task-lr runs. On that seed, `{TUNED}` is the chosen grid run itself: picked for "
        "being fastest there, which favours it.",
        "",
        *rows,
        "",
    ]


def detail_table(methods: dict) -> str:
    rows = [
        "| method | cases (instance x seed) | events (median) | multipliers accepted (median, max) | "
        "retained at target (that point) | "
        "drift (KL to start on the retained skill) |",
        "|---|---|---:|---|---:|---:|",
    ]
    for method, f in methods.items():
        acc = f["accepted_multipliers"]
        mult = f"{statistics.median(acc):.2f}, {max(acc):.2f}" if acc else ""
        rows.append(
            f"| {method} | {f['cases']} | {f['events']:.0f} | {mult} | {na(f['retained_at_target'], 3)} | "
            f"{na(f['drift_final'], 4)} |"
        )
    return "\n".join(rows)
