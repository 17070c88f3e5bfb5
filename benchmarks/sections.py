"""REPORT.md's sections across tasks, in the report's order: the cases a rule set aside and the checks not made
(`set_aside`), the two rulesets (`self_tuning_table`), the tuned lr under other tolerances (`tolerance_table`), where
a step's seconds go (`seconds_split_table`), measured against modelled seconds (`clock_agreement`), what predicts the
speed-up (`predictors`), direction stability (`stability_table`) and the wrapper's overhead (`overhead_table`)."""

from __future__ import annotations

import statistics
from collections import defaultdict

from benchmarks import yardstick
from benchmarks.fmt import fmt, times
from benchmarks.goals import RACE_TASKS, full_rows
from benchmarks.summary import SELF_TUNED, case_key, is_grid
from benchmarks.tasks import BASELINE, TUNED
from benchmarks.yardstick import RETAINED_TOLERANCE, reach, spearman, targets_of, tuned_multiple


def set_aside(
    summary: dict, goal_rows: list[tuple[str, bool | None, str]], who: str = "the full mode runs"
) -> list[str]:
    """REPORT.md's cases that a rule set aside: each (task, case) whose metric has no target, why (an ill-conditioned
    gain: yardstick.conditioned; no gain; no baseline run), and what stood in; then the checks the run could not make.
    The grid's runs on each instance's first seed only are the design, not a case set aside."""
    rows = []
    for task, methods in summary.items():
        cases = {k: c for f in methods.values() for k, c in f["per_seed"].items()}  # a case's targets: adamw's
        for key, case in sorted(cases.items()):
            if case["metric_target"] is not None:
                continue
            gain = case["baseline_gain"]
            if gain is None:
                why = "no adamw run on this case"
            elif case["metric_target_conditioned"] is False:
                why = (
                    f"metric target ill-conditioned: adamw's gain {gain:+.3f} is under {yardstick.CONDITIONING:g} "
                    "standard errors of the metric at its end"
                )
            else:
                why = f"adamw made no gain in the metric ({gain:+.3f})"
            ours = methods.get("effopt", {}).get("per_seed", {}).get(key)
            stood_in = (
                "nothing: no objective target either"
                if case["objective_target"] is None
                else f"the objective's target {case['objective_target']:.4f}"
                + ("" if ours is None else f" (effopt {times(ours['speedup_objective'])} in steps)")
            )
            rows.append(f"| {task} | {key} | {why} | {stood_in} |")
    unchecked = [f"- {what}: {measured.removeprefix('not run: ')}" for what, ok, measured in goal_rows if ok is None]
    full = full_rows()
    thinned = [
        f"- {task}: {', '.join(sorted(full[task] - set(methods)))}"
        for task, methods in summary.items()
        if task in full and full[task] - set(methods)
    ]
    return [
        "## Cases a rule set aside",
        "",
        "A case (instance x seed) whose metric has no target leaves the metric's medians, its k/n and the metric's "
        "per-case lists; the objective's target decides it instead (the decisive speed-ups: the instance table, the "
        "do-no-harm goals). The lr grid on each instance's first seed only is the design, not a case set aside.",
        "",
        *(
            ["| task | case | why | what stood in |", "|---|---|---|---|", *rows]
            if rows
            else ["No case: every case's metric target is well-conditioned."]
        ),
        "",
        f"Checks this run could not make (rows that {who} and this run did not):"
        if unchecked
        else "Every check was made on this run.",
        "",
        *unchecked,
        *([""] if unchecked else []),
        *(
            [
                "Rows the full mode (`make bench-full`) runs that this run left out, as telling nothing the rows kept "
                "do not (benchmarks/tasks.py says why, row by row), beside the full mode's every seed and larger "
                "budgets:",
                "",
                *thinned,
                "",
            ]
            if thinned
            else []
        ),
    ]


def self_tuning_table(summary: dict) -> list[str]:
    rows = []
    for task, methods in summary.items():
        tuned = methods.get(TUNED)
        if tuned is None or "sweep" not in tuned:
            continue
        for method in (TUNED, "effopt-tuned") + SELF_TUNED:
            f = methods.get(method)
            if f is None or "speedup_vs_tuned_external" not in f:
                continue
            cost = sweep = ""
            if method == TUNED:
                cost = (
                    f"{fmt(tuned['self_tuning_steps_to_target'], 0)} steps, "
                    f"{fmt(tuned['self_tuning_seconds_to_target'], 1)} s"
                )
                sweep = "; ".join(
                    f"instance {i}: {c['runs']} runs, {c['steps']} steps, {c['seconds']:.0f} s"
                    for i, c in tuned["sweep"].items()
                )
            rows.append(
                f"| {task} | {method} | {cost} | {sweep} | {times(f['speedup_vs_tuned_external'])} | "
                f"{times(f['speedup_vs_tuned_external_seconds'])} | {times(f['speedup_vs_tuned_self_tuning'])} "
                f"| {times(f['speedup_vs_tuned_self_tuning_seconds'])} |"
            )
    if not rows:
        return []
    return [
        "## Two rulesets: external tuning and self-tuning",
        "",
        "AlgoPerf scores an optimizer under two rulesets. External tuning: the lr sweep is free, and adamw-tuned "
        "costs its own run (the race table's `speed-up vs adamw-tuned`). Self-tuning: tuning is part of the "
        "score, so adamw-tuned (and effopt-tuned) cost the whole sweep on the instance, every grid run and the "
        "task lr's up to the decisive target (the metric's, or the objective's where the metric has none) or to "
        "their budget where they never get there, plus their own run; effopt, effopt-noscale and Prodigy tune "
        "nothing and pay their own run alone. Speed-ups are adamw-tuned's cost over the row's, per case, median.",
        "",
        "| task | method | self-tuning cost to target (median) | the sweep | speed-up vs adamw-tuned, external "
        "tuning (steps) | (seconds) | self-tuning (steps) | (seconds) |",
        "|---|---|---:|---|---:|---:|---:|---:|",
        *rows,
        "",
    ]


KNIFE_EDGES = (0.01, 0.02, 0.05)  #: the retained tolerances under which the tuned-lr pick is shown (issue 26)


def tolerance_table(runs: list[dict]) -> list[str]:
    """The tuned-lr pick on each instance's first seed under each of KNIFE_EDGES, and whether effopt at the task lr
    (on that seed) reaches the task lr's target in no more steps than the picked lr's run: does the verdict change?"""
    rows = []
    grid_runs = [r for r in runs if r["method"] == BASELINE or is_grid(r["method"])]
    for task, instance, seed in sorted(
        {(r["task"], r.get("instance", 0), r["seed"]) for r in grid_runs if is_grid(r["method"])}
    ):
        first = {
            r["method"]: r for r in grid_runs if (r["task"], r.get("instance", 0), r["seed"]) == (task, instance, seed)
        }
        ours = next(
            (
                r
                for r in runs
                if (r["task"], r["method"], r.get("instance", 0), r["seed"]) == (task, "effopt", instance, seed)
            ),
            None,
        )
        targets = targets_of(first[BASELINE])
        key, higher = ("metric", True) if targets["metric"] is not None else ("objective", False)
        for tolerance in KNIFE_EDGES:
            multiple = tuned_multiple(first, tolerance=tolerance)
            picked = first[BASELINE if multiple == 1 else f"{BASELINE}-{multiple:g}x"]
            steps = reach(picked["curve"], key, targets[key], higher)[0]
            mine = None if ours is None else reach(ours["curve"], key, targets[key], higher)[0]
            verdict = (
                "n/a" if ours is None else ("yes" if mine is not None and (steps is None or mine <= steps) else "no")
            )
            rows.append(
                f"| {task} | {instance} | {tolerance:g} | {multiple:g}x | {fmt(steps, 0)} | {fmt(mine, 0)} | "
                f"{verdict} |"
            )
    if not rows:
        return []
    return [
        "## The tuned lr under other retained tolerances",
        "",
        f"adamw-tuned's pick on each instance's first seed with the retained tolerance at {', '.join(map(str, KNIFE_EDGES))} "
        f"(the race uses {RETAINED_TOLERANCE}), steps to the task lr's target (the metric's, or the objective's where the "
        "metric's is ill-conditioned), and whether effopt at the task lr gets there no later on that seed.",
        "",
        "| task | instance | tolerance | picked | its steps | effopt's steps | effopt no later |",
        "|---|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
    ]


def seconds_split_table(runs: list[dict]) -> list[str]:
    """Where a loop splits its training seconds (reference.smol: generate, teacher, student, update, probe): per task
    and method, the mean per step over its runs, and a probe call's cost in base steps."""
    rows = []
    for (task, method), group in sorted(_group(r for r in runs if r.get("seconds_split") and not r.get("reused"))):
        steps = sum(r["curve"][-1]["step"] for r in group)
        split = {k: sum(r["seconds_split"][k] for r in group) / steps for k in group[0]["seconds_split"]}
        calls = sum(yardstick.probe_calls(e) for r in group for e in r["events"])
        base = sum(v for k, v in split.items() if k != "probe")
        per_call = "" if not calls else f"{split['probe'] * steps / calls / base:.2f}"
        rows.append(
            f"| {task} | {method} | {len(group)} | "
            + " | ".join(f"{v:.2f}" for v in split.values())
            + f" | {sum(split.values()):.2f} | {per_call} |"
        )
    if not rows:
        return []
    keys = next(r for r in runs if r.get("seconds_split"))["seconds_split"]
    return [
        "## Where a step's seconds go",
        "",
        "Training seconds per step, mean over the runs (a reused run counted once); the probe column is "
        "extrapolation events (probe calls and moves) spread over the steps; a probe call's cost is in base steps "
        "(a step's seconds without events).",
        "",
        "| task | method | runs | " + " | ".join(keys) + " | total | probe call (base steps) |",
        "|---|---|---:|" + "---:|" * (len(keys) + 2),
        *rows,
        "",
    ]


def _group(runs) -> list[tuple[tuple[str, str], list[dict]]]:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in runs:
        groups[(r["task"], r["method"])].append(r)
    return list(groups.items())


def clock_agreement(summary: dict) -> list[str]:
    """How far measured seconds to target sit from the clock model's (yardstick.modelled_seconds), over every run."""
    gaps = [
        abs(c["seconds_to_target"] / c["modelled_seconds_to_target"] - 1)
        for methods in summary.values()
        for f in methods.values()
        for c in f["per_seed"].values()
        if c["seconds_to_target"] and c["modelled_seconds_to_target"]
    ]
    if not gaps:
        return []
    gaps.sort()
    return [
        "## Measured and modelled seconds",
        "",
        f"Over the {len(gaps)} runs that reached their target, measured seconds to target differ from the clock "
        f"model's (steps x the run's plain-step seconds + probe calls x its seconds per call) by a median of "
        f"{statistics.median(gaps):.1%}, 90th percentile {gaps[int(0.9 * (len(gaps) - 1))]:.1%}, at most "
        f"{gaps[-1]:.1%}. The model keeps each run's own costs and drops when, within the run, the machine was "
        "slow.",
        "",
    ]


def predictors(runs: list[dict], summary: dict) -> list[str]:
    """What in a start predicts effopt's speed-up: Spearman correlations over the post-training race's cases."""
    rows = []
    for task in RACE_TASKS:
        ours = summary.get(task, {}).get("effopt")
        if not ours:
            continue
        by_case = {case_key(r): r for r in runs if r["task"] == task and r["method"] == "effopt"}
        cases = [(c, f) for c, f in ours["per_seed"].items() if c in by_case]
        speed = [f["speedup_steps"] if f["metric_target"] is not None else f["speedup_objective"] for _, f in cases]
        if len(cases) < 3 or None in speed:
            continue
        signals = {
            "start metric": [f["initial_metric"] for _, f in cases],
            "adamw's gain": [f["baseline_gain"] for _, f in cases],
            "mean accepted multiplier": [
                statistics.fmean([e["accepted"] for e in by_case[c]["events"]] or [1.0]) for c, _ in cases
            ],
            "mean event stability": [
                statistics.fmean(
                    [e["stability"] for e in by_case[c]["events"] if e.get("stability") is not None] or [0.0]
                )
                for c, _ in cases
            ],
        }
        cells = [
            fmt(spearman(values, speed)) if spearman(values, speed) is not None else "n/a"
            for values in signals.values()
        ]
        rows.append(f"| {task} | {len(cases)} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "## What predicts effopt's speed-up",
        "",
        "Spearman rank correlation, over each task's cases (instance x seed), between effopt's decisive speed-up "
        "in steps and a property of the case read before or during the run. Few cases: a hint, not a test.",
        "",
        "| task | cases | start metric | adamw's gain | mean accepted multiplier | mean event stability |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]


def stability_table(runs: list[dict], summary: dict) -> list[str]:
    """Per task: the mean direction stability that effopt's events recorded, against its speed-up."""
    rows, points = [], []
    for task, methods in summary.items():
        ours = methods.get("effopt")
        stability = [
            e["stability"]
            for r in runs
            if r["task"] == task and r["method"] == "effopt"
            for e in r["events"]
            if e.get("stability") is not None
        ]
        if not ours or not stability:
            continue
        stab = statistics.fmean(stability)
        rows.append(f"| {task} | {ours['regime']} | {stab:.3f} | {times(ours['speedup_steps'])} |")
        points.append((stab, ours["speedup_steps"] or 0.0))
    if not rows:
        return []
    rho = spearman([p[0] for p in points], [p[1] for p in points])
    return [
        "## Direction stability against speed-up",
        "",
        "Stability: the mean cosine of successive accumulated updates that effopt's events recorded on line "
        "(`events[i]['stability']`). Speed-up: effopt's, in steps to the task metric's target (median over seeds). "
        "The offline alignment figures (early cosine, principal angles, low-rank energy) are `make foresight`'s: "
        "recording them inside a timed run would charge their cost to one method.",
        "",
        "| task | regime | mean event stability | effopt speed-up (steps) |",
        "|---|---|---:|---:|",
        *rows,
        "",
        f"Spearman rank correlation over these {len(rows)} tasks: "
        + (
            f"{rho:.2f} (few tasks: a hint, not a test)."
            if rho is not None
            else "n/a (it needs three tasks that vary)."
        ),
        "",
    ]


def overhead_table(runs: list[dict]) -> str:
    rows = [
        "| model | bare AdamW step | step without event (ratio) | the same, added time | first candidate move "
        "(ratio to a step) | later candidate move (ratio) | extra memory at rest | selected parameters |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        rows.append(
            f"| {r['size']} | {r['bare_step_seconds'] * 1e3:.2f} ms | {r['step_ratio']:.3f} | "
            f"{r['step_overhead_us']:.0f} us | "
            f"{r['first_move_ratio']:.2f} | {r['later_move_ratio']:.2f} | {r['extra_state_bytes']:,} B | "
            f"{r['selected_param_bytes']:,} B |"
        )
    return "\n".join(rows)
