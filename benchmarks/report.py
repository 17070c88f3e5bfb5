"""Turn a pytest-benchmark JSON of `pytest benchmarks/` into REPORT.md, summary.json and learning-curve plots.

    python -m benchmarks.report benchmarks/results/benchmark.json

How a curve is read (target, the crossing that counts, medians with misses) is benchmarks.yardstick's, stated in its
docstring and at the top of REPORT.md. The README's results section is rewritten from the same figures.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

from benchmarks import yardstick
from benchmarks.fmt import fmt, median_of, na, speedups, times
from benchmarks.goals import RACE_TASKS, all_goals, full_rows
from benchmarks.tasks import BASELINE, HEADLINE, TUNED
from benchmarks.yardstick import (  # noqa: F401 (RETAINED_TOLERANCE, spearman, tuned_multiple: re-exported)
    MEASURES,
    RETAINED_TOLERANCE,
    median_never,
    ratio,
    reach,
    reached,
    spearman,
    tail,
    targets_of,
    tuned_multiple,
)

RESULTS = Path(__file__).parent / "results"
README = Path(__file__).parent.parent / "README.md"
MARKERS = ("<!-- report:start -->", "<!-- report:end -->")
README_PLOT = "opd-near"  #: the task whose plot, with the headline rows only, the README shows


def _reach_all(curve: list[dict], targets: dict) -> dict:
    return {key: reach(curve, key, targets.get(key), higher) for key, higher in MEASURES}


def case_key(run: dict) -> str:
    """A run's case, instance and seed, as summary.json's per_seed keys spell it: "i0-s1"."""
    return f"i{run.get('instance', 0)}-s{run['seed']}"


def summarise(runs: list[dict]) -> dict:
    """{task: {method: figures}} from the speed-up runs' extra_info (see summary.json in the README). Figures are
    medians over every case (instance x seed) with `per_seed` (by case) and `per_instance` beside them."""
    by_task: dict[str, dict[str, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
    for run in runs:
        by_task[run["task"]][run["method"]][case_key(run)] = run
    summary = {}
    for task, methods in by_task.items():
        base_runs = methods.get(BASELINE, {})
        targets = {case: targets_of(r) for case, r in base_runs.items()}
        base_reach = {case: _reach_all(base_runs[case]["curve"], t) for case, t in targets.items()}
        base_modelled = {  # {case: {measure: the baseline's modelled seconds to its target}}
            case: {
                key: yardstick.modelled_seconds(
                    base_reach[case][key][0], r["events"], yardstick.probe_bill(r["curve"], r["events"])
                )
                for key, _ in MEASURES
            }
            for case, r in base_runs.items()
        }
        tuned_runs = methods.get(TUNED, {})
        tuned_reach = {case: _reach_all(r["curve"], targets[case]) for case, r in tuned_runs.items() if case in targets}
        summary[task] = {}
        for method, cases in methods.items():
            per_seed, accepted, n_events = {}, [], []
            for case, r in sorted(cases.items()):
                accepted.extend(e["accepted"] for e in r["events"])
                n_events.append(len(r["events"]))
                got = _reach_all(r["curve"], targets.get(case, {}))
                steps, seconds = got["metric"]
                bill = yardstick.probe_bill(r["curve"], r["events"])
                modelled = yardstick.modelled_seconds(steps, r["events"], bill)
                modelled_objective = yardstick.modelled_seconds(got["objective"][0], r["events"], bill)
                base = base_reach.get(case)
                base_curve = base_runs[case]["curve"] if case in base_runs else None
                per_seed[case] = {
                    "instance": r.get("instance", 0),
                    "seed": r["seed"],
                    "lr": r.get("lr"),
                    "steps_to_target": steps,
                    "seconds_to_target": seconds,
                    "steps_to_objective_target": got["objective"][0],
                    "seconds_to_objective_target": got["objective"][1],
                    "final_metric": tail(r["curve"], "metric"),
                    "final_objective": tail(r["curve"], "objective"),
                    "retained_final": tail(r["curve"], "retained"),
                    "retained_at_target": next((p.get("retained") for p in r["curve"] if p["step"] == steps), None),
                    "drift_final": tail(r["curve"], "drift"),
                    "initial_metric": r["initial_metric"],
                    "initial_retained": r["curve"][0].get("retained"),
                    "baseline_gain": (
                        None if base_curve is None else tail(base_curve, "metric") - base_curve[0]["metric"]
                    ),
                    "metric_target": targets.get(case, {}).get("metric"),
                    "metric_target_conditioned": None
                    if base_curve is None
                    else yardstick.conditioned(base_curve, "metric", base_runs[case].get("metric_examples")),
                    "speedup_steps": None if base is None else ratio(base["metric"][0], steps),
                    "speedup_seconds": None if base is None else ratio(base["metric"][1], seconds),
                    "modelled_seconds_to_target": modelled,
                    "speedup_modelled_seconds": (
                        None if base is None else ratio(base_modelled[case]["metric"], modelled)
                    ),
                    "probe_share": bill["probe_share"],
                    "probe_calls_per_100_steps": bill["probe_calls_per_100_steps"],
                    "speedup_objective": None if base is None else ratio(base["objective"][0], got["objective"][0]),
                    "objective_target": targets.get(case, {}).get("objective"),
                    "speedup_objective_seconds": (
                        None if base is None else ratio(base["objective"][1], got["objective"][1])
                    ),
                    "modelled_seconds_to_objective_target": modelled_objective,
                    "speedup_objective_modelled_seconds": (
                        None if base is None else ratio(base_modelled[case]["objective"], modelled_objective)
                    ),
                    "speedup_steps_vs_tuned": (
                        ratio(tuned_reach[case]["metric"][0], steps) if case in tuned_reach else None
                    ),
                    "events": len(r["events"]),
                    "commit": r.get("commit"),
                    "dirty": r.get("dirty"),
                    "budget_steps": r["curve"][-1]["step"],
                    "train_seconds": r["curve"][-1]["train_seconds"],
                }
            first = cases[min(cases)]
            summary[task][method] = dict(
                _figures(per_seed.values()),
                **{
                    "seeds": sorted({r["seed"] for r in cases.values()}),
                    "instances": sorted({r.get("instance", 0) for r in cases.values()}),
                    "device": first["device_name"],
                    "lr": first.get("lr"),
                    "lr_multiple": first.get("lr_multiple"),
                    "per_seed": per_seed,
                    "per_instance": {
                        str(i): {
                            k: v
                            for k, v in _figures([f for f in per_seed.values() if f["instance"] == i]).items()
                            if not k.endswith("_per_seed")
                        }
                        for i in sorted({f["instance"] for f in per_seed.values()})
                    },
                    # for the report's tables
                    "target": median_of([t["metric"] for t in targets.values()]),
                    "objective_target": median_of([t["objective"] for t in targets.values()]),
                    "budget_steps": first["curve"][-1]["step"],
                    "first_seed_run_seconds": first.get("run_seconds", 0.0),
                    "events": statistics.median(n_events),
                    "accepted_multipliers": accepted,
                    "reused": first.get("reused"),
                    "regime": first["regime"],
                    "notes": first["notes"],
                    "commit": _commit_text(cases.values()),
                },
            )
            per_instance = summary[task][method]["per_instance"]
            worst = [f["speedup_decisive"] for f in per_instance.values()]
            summary[task][method]["worst_instance_speedup"] = min(worst) if worst and None not in worst else None
        self_tuning(summary[task])
    return summary


#: The rows that the self-tuning view scores against adamw-tuned: the lr-free ones pay for no sweep, the tuned ones do
SELF_TUNED = ("effopt", "effopt-noscale", "prodigy", "effopt-budget", "effopt-guard")


def _decisive(case: dict) -> tuple[float | None, float | None]:
    """(steps, seconds) to the case's decisive target: the metric's where it has one, else the objective's."""
    if case["metric_target"] is not None:
        return case["steps_to_target"], case["seconds_to_target"]
    return case["steps_to_objective_target"], case["seconds_to_objective_target"]


def _is_grid(method: str) -> bool:
    return method.startswith(f"{BASELINE}-") and method.endswith("x")


def self_tuning(methods: dict) -> None:
    """AlgoPerf's two rulesets, added to a task's figures in place (where it has an lr grid and `adamw-tuned`).

    External tuning: adamw-tuned's cost is its own run (the sweep is free), as in the race table. Self-tuning: its cost
    is the whole sweep on the instance (every grid run, the task lr's included, up to the decisive target, or to its
    budget where it never gets there; in steps and in training seconds) plus its own run to the target; a tuned effopt
    row pays the same sweep. Rows in SELF_TUNED, which tune nothing, pay for their own run alone. Adds, per row,
    `speedup_vs_tuned_external` and `speedup_vs_tuned_self_tuning` (steps) and the same for seconds, medians over
    cases; and to adamw-tuned, `sweep` (per instance: steps, seconds, runs) and its self-tuning steps and seconds."""
    tuned = methods.get(TUNED)
    grid = {m: f for m, f in methods.items() if m == BASELINE or _is_grid(m)}
    if tuned is None or len(grid) < 2:
        return
    firsts = {c["instance"]: c["seed"] for m, f in grid.items() if m != BASELINE for c in f["per_seed"].values()}
    sweep: dict[int, dict] = {}
    for f in grid.values():  # each grid run, the task lr's on the same seed among them
        for case in f["per_seed"].values():
            if firsts.get(case["instance"]) != case["seed"]:
                continue
            steps, seconds = _decisive(case)
            cost = sweep.setdefault(case["instance"], {"steps": 0, "seconds": 0.0, "runs": 0})
            cost["steps"] += case["budget_steps"] if steps is None else steps
            cost["seconds"] += case["train_seconds"] if seconds is None else seconds
            cost["runs"] += 1

    def cost_of(f: dict, case_key: str, with_sweep: bool) -> tuple[float | None, float | None]:
        case = f["per_seed"][case_key]
        steps, seconds = _decisive(case)
        if steps is None or not with_sweep:
            return steps, seconds
        paid = sweep.get(case["instance"], {"steps": 0, "seconds": 0.0})
        return steps + paid["steps"], (None if seconds is None else seconds + paid["seconds"])

    tuned_self = {k: cost_of(tuned, k, True) for k in tuned["per_seed"]}
    tuned["sweep"] = {str(i): c for i, c in sorted(sweep.items())}
    tuned["self_tuning_steps_to_target"] = median_never([v[0] for v in tuned_self.values()])
    tuned["self_tuning_seconds_to_target"] = median_never([v[1] for v in tuned_self.values()])
    for method, f in methods.items():
        if method not in SELF_TUNED + (TUNED, "effopt-tuned"):
            continue
        pays = method in (TUNED, "effopt-tuned")
        for view, with_sweep in (("external", False), ("self_tuning", True)):
            steps_ratio, seconds_ratio = [], []
            for key in f["per_seed"]:
                if key not in tuned["per_seed"]:
                    continue
                ref = cost_of(tuned, key, with_sweep)
                own = cost_of(f, key, with_sweep and pays)
                steps_ratio.append(ratio(ref[0], own[0]))
                seconds_ratio.append(ratio(ref[1], own[1]))
            f[f"speedup_vs_tuned_{view}"] = median_of(steps_ratio)
            f[f"speedup_vs_tuned_{view}_seconds"] = median_of(seconds_ratio)


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


def _commit_text(runs) -> str | None:
    """The commit that made `runs` (with " (dirty tree)" where a tree differed from it); several, comma-joined."""
    made = sorted({f"{r['commit']}{' (dirty tree)' if r.get('dirty') else ''}" for r in runs if r.get("commit")})
    return ", ".join(made) if made else None


KNIFE_EDGES = (0.01, 0.02, 0.05)  #: the retained tolerances under which the tuned-lr pick is shown (issue 26)


def tolerance_table(runs: list[dict]) -> list[str]:
    """The tuned-lr pick on each instance's first seed under each of KNIFE_EDGES, and whether effopt at the task lr
    (on that seed) reaches the task lr's target in no more steps than the picked lr's run: does the verdict change?"""
    rows = []
    grid_runs = [r for r in runs if r["method"] == BASELINE or _is_grid(r["method"])]
    for task, instance, seed in sorted(
        {(r["task"], r.get("instance", 0), r["seed"]) for r in grid_runs if _is_grid(r["method"])}
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


def duration_text(data: dict, runs: list[dict]) -> list[str]:
    """How long the run took: as measured around it (`--duration`), and its runs' own seconds summed."""
    own = sum(r["run_seconds"] for r in runs if not r.get("reused"))
    measured = f"{data['duration']} in all, as measured around it; " if data.get("duration") else ""
    return [f"Time: {measured}its {len(runs)} runs took {own / 60:.1f} minutes (reused runs not counted).", ""]


def reruns_text(runs: list[dict]) -> list[str]:
    again = [
        f"{r['task']} {r['method']} (instance {r.get('instance', 0)}, seed {r['seed']})" for r in runs if r.get("rerun")
    ]
    if not again:
        return []
    return [
        f"Made again, alone, and used here in place of the first run (other work on the machine had slowed it; the "
        f"steps are the same bits, the seconds are the rerun's): {'; '.join(again)}.",
        "",
    ]


def sources(runs: list[dict]) -> list[str]:
    """REPORT.md's statement of which commit made which rows: one line where one clean commit made them all, else a
    loud list."""
    by_commit: dict[str, list[str]] = defaultdict(list)
    for r in runs:
        by_commit[_commit_text([r]) or "unrecorded (made before runs recorded their commit)"].append(
            f"{r['task']}/{r['method']}"
        )
    if len(by_commit) == 1 and "dirty" not in next(iter(by_commit)) and "unrecorded" not in next(iter(by_commit)):
        return [f"Every run was made by commit `{next(iter(by_commit))}`.", ""]
    lines = ["**WARNING: these rows do not all come from one clean commit.**", ""]
    for commit, rows in sorted(by_commit.items()):
        tasks = sorted({r.split("/")[0] for r in rows})
        lines.append(f"- `{commit}`: {len(rows)} runs ({', '.join(tasks)})")
    return lines + [""]


def _figures(cases) -> dict:
    """Medians over a set of cases' per_seed figures: the whole task's, or one instance's. A case whose metric has no
    target (the baseline made no gain, or one within the metric's noise: yardstick.conditioned) counts in neither the
    metric's median nor its k/n; there the objective's speed-up decides (`speedup_decisive`, and per case in steps,
    seconds and modelled seconds: `speedup_decisive_*per_seed`, with `objective_fallbacks` such cases)."""
    cases = list(cases)
    targeted = [f for f in cases if f["metric_target"] is not None]
    column = lambda key, among=cases: [f[key] for f in among]  # noqa: E731

    def decisive(metric: str, objective: str) -> list:  # the metric's speed-up, else the objective's (get: an older
        # summary.json's cases lack the objective's seconds)
        return [f[metric] if f["metric_target"] is not None else f.get(objective) for f in cases]

    return {
        "steps_to_target": median_never(column("steps_to_target", targeted)),
        "seconds_to_target": median_never(column("seconds_to_target", targeted)),
        "final_metric": median_of(column("final_metric")),
        "speedup_steps": median_of(column("speedup_steps", targeted)),
        "speedup_seconds": median_of(column("speedup_seconds", targeted)),
        "modelled_seconds_to_target": median_never(column("modelled_seconds_to_target", targeted)),
        "speedup_modelled_seconds": median_of(column("speedup_modelled_seconds", targeted)),
        "probe_share": median_of(column("probe_share")),
        "probe_calls_per_100_steps": median_of(column("probe_calls_per_100_steps")),
        "retained_final": median_of(column("retained_final")),
        "steps_to_objective_target": median_never(column("steps_to_objective_target")),
        "seconds_to_objective_target": median_never(column("seconds_to_objective_target")),
        "speedup_steps_vs_tuned": median_of(column("speedup_steps_vs_tuned", targeted)),
        "speedup_objective": median_of(column("speedup_objective")),
        "speedup_decisive": median_of(decisive("speedup_steps", "speedup_objective")),
        "final_objective": median_of(column("final_objective")),
        "retained_at_target": median_of(column("retained_at_target", targeted)),
        "drift_final": median_of(column("drift_final")),
        "initial_metric": median_of(column("initial_metric")),
        "initial_retained": median_of(column("initial_retained")),
        "baseline_gain": median_of(column("baseline_gain")),
        "conditioned": f"{sum(bool(f['metric_target_conditioned']) for f in cases)}/{len(cases)}",
        "cases": len(cases),
        "reached": reached(column("steps_to_target", targeted)),
        "reached_objective": reached(column("steps_to_objective_target")),
        "speedup_steps_per_seed": column("speedup_steps", targeted),
        "speedup_seconds_per_seed": column("speedup_seconds", targeted),
        "speedup_modelled_seconds_per_seed": column("speedup_modelled_seconds", targeted),
        "speedup_objective_per_seed": column("speedup_objective"),
        # every case, in order: the metric's speed-up where it has a target, else the objective's (the do-no-harm goals)
        "speedup_decisive_per_seed": decisive("speedup_steps", "speedup_objective"),
        "speedup_decisive_seconds_per_seed": decisive("speedup_seconds", "speedup_objective_seconds"),
        "speedup_decisive_modelled_seconds_per_seed": decisive(
            "speedup_modelled_seconds", "speedup_objective_modelled_seconds"
        ),
        "objective_fallbacks": len(cases) - len(targeted),
    }


PUBLISHED = (
    "steps_to_target",
    "seconds_to_target",
    "final_metric",
    "speedup_steps",
    "speedup_seconds",
    "seeds",
    "instances",
    "device",
    "lr",
    "retained_final",
    "steps_to_objective_target",
    "seconds_to_objective_target",
    "speedup_steps_vs_tuned",
    "speedup_objective",
    "worst_instance_speedup",
    "modelled_seconds_to_target",
    "speedup_modelled_seconds",
    "probe_share",
    "probe_calls_per_100_steps",
    "per_instance",
    "per_seed",
    "speedup_vs_tuned_external",
    "speedup_vs_tuned_external_seconds",
    "speedup_vs_tuned_self_tuning",
    "speedup_vs_tuned_self_tuning_seconds",
    "sweep",
    "self_tuning_steps_to_target",
    "self_tuning_seconds_to_target",
    "commit",
)


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


#: The goals of the method work (issue "win the honest race"), each checked on every run of the report.
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


def _style(method: str, k: int) -> dict:
    """A distinct colour per method (tab20) and a line style per family: AdamW solid, effopt dashed, others dotted."""
    import matplotlib

    family = "-" if method.startswith(BASELINE) else "--" if method.startswith("effopt") else ":"
    return dict(color=matplotlib.colormaps["tab20"](k % 20), ls=family, lw=2.2 if method == "effopt" else 1.3)


def plot(task: str, runs: list[dict], out: Path, target: float | None = None, methods: tuple[str, ...] | None = None):
    """Per method, the median over cases of the metric (by step and by training seconds) and of the retained skill,
    with a min-max band over cases; the median target as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_method = defaultdict(list)
    for run in runs:
        if methods is None or run["method"] in methods:
            by_method[run["method"]].append(run["curve"])
    retained = any(p.get("retained") is not None for curves in by_method.values() for c in curves for p in c)
    fig, axes = plt.subplots(1, 3 if retained else 2, figsize=(16 if retained else 11, 4.2))
    for k, (method, curves) in enumerate(sorted(by_method.items())):
        n = min(len(c) for c in curves)
        steps = [curves[0][j]["step"] for j in range(n)]
        seconds = [statistics.median(c[j]["train_seconds"] for c in curves) for j in range(n)]
        style = _style(method, k)
        panels = [("metric", steps, axes[0]), ("metric", seconds, axes[1])]
        if retained:
            panels.append(("retained", steps, axes[2]))
        for key, x, ax in panels:
            if any(c[0].get(key) is None for c in curves):
                continue
            values = [[c[j][key] for c in curves] for j in range(n)]
            ax.plot(x, [statistics.median(v) for v in values], label=method if ax is axes[0] else None, **style)
            if len(curves) > 1:
                ax.fill_between(
                    x, [min(v) for v in values], [max(v) for v in values], color=style["color"], alpha=0.12, lw=0
                )
    for ax in axes[:2]:
        ax.set_ylabel("task metric (higher is better)")
        if target is not None:
            ax.axhline(target, color="k", lw=0.8, ls="-.", label="target (median)" if ax is axes[0] else None)
    axes[0].set_xlabel("optimizer step")
    axes[1].set_xlabel("training seconds (probes included, evaluation excluded)")
    if retained:
        axes[2].set_xlabel("optimizer step")
        axes[2].set_ylabel("retained skill (exact match)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    cases = max(len(c) for c in by_method.values())
    fig.suptitle(f"{task} ({runs[0]['regime']}): median over {cases} cases (instance x seed), band min..max")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


RULES = (
    "How curves are read (benchmarks/yardstick.py): each curve is smoothed by a trailing mean over "
    f"{yardstick.SMOOTH} evaluation points. A case is one run's instance (one build of the task's world: teacher, "
    "students, data) and seed (data order and samples). Target, per task, case and measure: the start plus "
    f"{yardstick.GAIN_SHARE:.0%} of the gain that `{BASELINE}` (AdamW at the task's lr) made by its end (the mean of "
    f"its last {yardstick.SMOOTH} points); the task metric is higher-is-better, the objective (a validation loss on "
    "data no probe sees) lower-is-better. A metric target counts only where it is well-conditioned: AdamW's gain at "
    f"least {yardstick.CONDITIONING:g} standard errors of the metric on the eval set (sqrt(p(1-p)/n)); elsewhere that "
    "case has no metric target, leaves the metric's medians, and its objective's speed-up decides (`decisive`). Steps "
    "to target: the first evaluation point from which the smoothed curve stays at or beyond the target to the end of "
    "the run; `never` if it does not stay. Seconds: training seconds at that point (probes and events included, "
    "evaluation excluded). Over cases: medians with misses counted as never, [min..max] over cases and k/n reached; a "
    "speed-up is the reference's steps (or seconds) over the run's, per case (a miss counts as 0x, shown as never), "
    "then the median; per instance, the median over its seeds, and the worst instance is the lowest of those. Final "
    f"figures are the mean of the last {yardstick.SMOOTH} points. Retained: exact match on a skill the model had at "
    "the start and the post-training does not train (OPD and SFT: digit reversal; EchoDistill: answers on clean "
    "audio). Note that effopt's probe is a validation loss of the same kind as the objective, on a disjoint split "
    "(EchoDistill's also includes clean audio): a signal that AdamW and Prodigy do not get, and the method's whole "
    "point."
)


def cpu_text(data: dict, runs: list[dict]) -> str:
    """The CPU the figures come from, as pytest-benchmark's machine_info saw it, with torch's kernel level."""
    cpu = data.get("machine_info", {}).get("cpu", {})
    level = sorted({r.get("cpu_capability") for r in runs if r.get("cpu_capability")})
    return (
        f"{cpu.get('brand_raw', 'unknown')} (vendor {cpu.get('vendor_id_raw', '?')}, "
        f"family {cpu.get('family', '?')}, model {cpu.get('model', '?')}), {cpu.get('count', '?')} cores"
        + (f", torch kernels {'/'.join(level)}" if level else "")
    )


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


def set_aside(summary: dict, goal_rows: list[tuple[str, bool | None, str]]) -> list[str]:
    """REPORT.md's cases that a rule set aside: each (task, case) whose metric has no target, why (an ill-conditioned
    gain: yardstick.conditioned; no gain; no baseline run), and what stood in; then the goals the run could not check.
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
        "Goals this run could not check (rows that the full mode runs and this run did not):"
        if unchecked
        else "Every goal was checked on this run.",
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


def write_report(
    data: dict, source: Path, out: Path = RESULTS, readme: Path | None = README, reruns: tuple[Path, ...] = ()
) -> str:
    runs = [b["extra_info"] for b in data["benchmarks"] if b["extra_info"].get("kind") == "speedup"]
    overhead = [b["extra_info"] for b in data["benchmarks"] if b["extra_info"].get("kind") == "overhead"]
    summary = summarise(runs)
    out.mkdir(parents=True, exist_ok=True)
    published = {
        task: {m: {k: f[k] for k in PUBLISHED if k in f} for m, f in methods.items()}
        for task, methods in summary.items()
    }
    (out / "summary.json").write_text(json.dumps(published, indent=1) + "\n")

    mode = runs[0]["mode"] if runs else "?"
    device = runs[0]["device_name"] if runs else "cpu"
    cpu = cpu_text(data, runs)
    command = " ".join(["python -m benchmarks.report", source.as_posix()] + [f"--rerun {r.as_posix()}" for r in reruns])
    goal_rows = all_goals(summary)
    lines = [
        "# effopt benchmark report",
        "",
        f"Mode `{mode}`, device `{device}`, CPU: {cpu}; {data.get('datetime', '')[:19]}; made from "
        f"`{source.name}` by `{command}`. Step counts are the same on any "
        "machine whose kernels give the same training arithmetic; seconds are this CPU's.",
        "",
        RULES,
        "",
        *sources(runs),
        *reruns_text(runs),
        *duration_text(data, runs),
        "## Goals (each checked on this run)",
        "",
        "| goal | met | measured |",
        "|---|---|---|",
        *[
            f"| {what} | {'not run' if ok is None else 'yes' if ok else 'NO'} | {measured} |"
            for what, ok, measured in goal_rows
        ],
        "",
        *set_aside(summary, goal_rows),
    ]
    for task, methods in summary.items():
        first = methods.get(BASELINE) or next(iter(methods.values()))
        order = sorted(methods, key=lambda m: (m not in HEADLINE, HEADLINE.index(m) if m in HEADLINE else 0))
        ordered = {m: methods[m] for m in order if not (m.startswith(f"{BASELINE}-") and m.endswith("x"))}
        start_retained = (
            "" if first["initial_retained"] is None else f", retained at the start {first['initial_retained']:.3f}"
        )
        objective = "" if first["objective_target"] is None else f"; objective target {first['objective_target']:.4f}"
        lines += [
            f"## {task}: {first['regime']}",
            "",
            f"{first['notes']}. Instances {first['instances']}, seeds {first['seeds']} ({first['cases']} cases of "
            f"the baseline); median target {fmt(first['target'], 3)} (start {first['initial_metric']:.3f}"
            f"{start_retained}){objective}.",
            "",
            race_table(ordered),
            "",
            *instance_table(ordered),
            *grid_table(methods),
            detail_table(ordered),
            "",
            f"![{task}]({task}.png)",
            "",
        ]
        plot(
            task,
            [r for r in runs if r["task"] == task],
            out / f"{task}.png",
            first["target"],
            tuple(m for m in ordered),
        )
        if task == README_PLOT:  # the README's: the headline rows only
            plot(
                task,
                [r for r in runs if r["task"] == task],
                out / f"{task}-headline.png",
                first["target"],
                tuple(m for m in ordered if m in HEADLINE),
            )
    lines += self_tuning_table(summary)
    lines += tolerance_table(runs)
    lines += seconds_split_table(runs)
    lines += clock_agreement(summary)
    lines += predictors(runs, summary)
    lines += stability_table(runs, summary)
    if overhead:
        lines += ["## Overhead", "", f"Threads: {overhead[0]['threads']}.", "", overhead_table(overhead), ""]
    report = "\n".join(lines)
    (out / "REPORT.md").write_text(report)
    if readme is not None:
        _update_readme(readme, summary, mode, device, cpu)
    return report


#: `make real`'s summary: the real model's race, reported on its own; its rows come first in the README's block
REAL_SUMMARY = RESULTS / "real" / "summary.json"
#: the README's headline table: each of these rows against adamw at the task's lr
README_ROWS = ("effopt", TUNED, "prodigy")


def from_published(published: dict) -> dict:
    """summary.json's {task: {method: figures}} with what the goals (benchmarks.goals.all_goals) and the README's block
    read besides: `_figures`' medians, counts and per-case lists, recomputed from each row's published per_seed cases
    as `summarise` computes them, so that a full summary and its published subset give the same goals and block.
    `objective_target` is True where the task has an objective target (some case reached one), else None: summary.json
    does not carry the target itself, and only whether there is one is read."""
    out = {}
    for task, methods in published.items():
        cases = [c for f in methods.values() for c in f["per_seed"].values()]
        objective = True if any(c["steps_to_objective_target"] is not None for c in cases) else None
        out[task] = {
            method: {**_figures(f["per_seed"].values()), **{k: f[k] for k in PUBLISHED if k in f}}
            | {"objective_target": objective}
            for method, f in methods.items()
        }
    return out


def _tally(rows: list[tuple[str, bool | None, str]]) -> str:
    met = [ok for _, ok, _ in rows]
    yes, no = sum(ok is not None and bool(ok) for ok in met), sum(ok is not None and not ok for ok in met)
    return f"{yes} met, {no} not met, {met.count(None)} not run"


def goal_tally(summary: dict, real: dict | None = None) -> str:
    """How many of REPORT.md's goals the run met, did not meet, did not run; then the real model's, from its own report,
    where `make real` has run (`summary`, `real`: from_published's)."""
    rows, extra = all_goals(summary), all_goals(real) if real else []
    text = (
        f"**Goals: {_tally(rows)}** (of {len(rows)}, each checked on this run: "
        "[REPORT.md](benchmarks/results/REPORT.md#goals-each-checked-on-this-run))"
    )
    if extra:
        text += (
            f"; the real model's: **{_tally(extra)}** (of {len(extra)}: "
            "[its report](benchmarks/results/real/REPORT.md#goals-each-checked-on-this-run))"
        )
    return text + "."


def headline_rows(summary: dict, label: str = "{task}") -> list[str]:
    """One row per task: each of README_ROWS' speed-up over adamw in steps / seconds with its cases reached, then the
    final retained skill of adamw and of each row."""
    rows = []
    for task, methods in summary.items():
        cells = [label.format(task=task)]
        for method in README_ROWS:
            f = methods.get(method)
            cell = "not run" if f is None else f"{times(f['speedup_steps'])} / {times(f['speedup_seconds'])}"
            cells.append(cell if f is None else f"{cell}, {f['reached']}")
        ours = methods.get("effopt", {})
        views = [ours.get(f"speedup_vs_tuned_{view}") for view in ("external", "self_tuning")]
        cells.append("-" if views[0] is None else f"{times(views[0])} / {times(views[1])}")
        kept = [na(methods[m]["retained_final"]) if m in methods else "-" for m in (BASELINE,) + README_ROWS]
        cells.append("n/a" if set(kept) <= {"n/a", "-"} else ", ".join(kept))
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def readme_block(
    summary: dict, mode: str, device: str, cpu: str, real: dict | None = None, real_cpu: str | None = None
) -> list[str]:
    """The lines between the README's MARKERS: the goal tally, the headline table (the real model's rows first, where
    `make real` has run), the headline plot. `summary` and `real`: full summaries or summary.json's published subset."""
    summary, real = from_published(summary), from_published(real or {})
    source = f"Measured by `make bench` (mode `{mode}`, device `{device}`, CPU: {cpu})"
    if real:
        source += (
            f"; the real model's rows by `make real` (CPU: {real_cpu or 'see its report'}; "
            "[its report](benchmarks/results/real/REPORT.md))"
        )
    legend = (
        "Speed-up over AdamW at the task's lr (`adamw`) to the target that AdamW reaches, in steps / in seconds (every "
        "probe call on the clock): the median over cases (instance x seed), then how many cases reached the target; "
        "`never`: the median case did not. `adamw-tuned`: AdamW at the lr a sweep picks on each instance (the sweep "
        "not counted); `prodigy`: untuned; `not run` (`-`): the task has no such row. effopt against adamw-tuned, in "
        "steps: with the sweep free (external tuning) / with the sweep's steps counted (self-tuning, AlgoPerf's two "
        "rulesets). Final retained: the skill that "
        f"the task does not train, at the end (higher is better). {source}. Every row, instance and seed: "
        "[REPORT.md](benchmarks/results/REPORT.md)."
    )
    return [
        goal_tally(summary, real),
        "",
        legend,
        "",
        "| task | effopt | adamw-tuned | prodigy | effopt vs adamw-tuned: sweep free / counted | final retained: adamw, "
        "effopt, adamw-tuned, prodigy |",
        "|---|---|---|---|---|---|",
        *headline_rows(real, "[{task}](benchmarks/results/real/REPORT.md) (real model)"),
        *headline_rows(summary),
        "",
        *[f"![{task}](benchmarks/results/{task}-headline.png)" for task in summary if task == README_PLOT],
    ]


def _update_readme(readme: Path, summary: dict, mode: str, device: str, cpu: str, real: Path = REAL_SUMMARY) -> None:
    """Rewrite the README's block between MARKERS (readme_block) from `summary` and, where it exists, `real`."""
    if not readme.exists() or MARKERS[0] not in readme.read_text():
        return
    real_summary = json.loads(real.read_text()) if real.exists() else None
    real_report = real.parent / "REPORT.md"
    real_cpu = _report_header(real_report)[2] if real_summary and real_report.exists() else None
    block = readme_block(summary, mode, device, cpu, real_summary, real_cpu)
    text = readme.read_text()
    start, end = text.index(MARKERS[0]) + len(MARKERS[0]), text.index(MARKERS[1])
    readme.write_text(text[:start] + "\n" + "\n".join(block) + "\n" + text[end:])


def refresh_readme(readme: Path = README, results: Path = RESULTS) -> None:
    """Rewrite the README's block from the committed results alone (summary.json; REPORT.md's first line for the mode,
    device and CPU; real/summary.json where `make real` wrote it), leaving the report and plots as they are:

        python -c "from benchmarks.report import refresh_readme; refresh_readme()"
    """
    mode, device, cpu = _report_header(results / "REPORT.md")
    summary = json.loads((results / "summary.json").read_text())
    _update_readme(readme, summary, mode, device, cpu, results / "real" / "summary.json")


def _report_header(report: Path) -> tuple[str, str, str]:
    """(mode, device, CPU) from a REPORT.md's first line."""
    header = next(line for line in report.read_text().splitlines() if line.startswith("Mode `"))
    ticks = header.split("`")
    return ticks[1], ticks[3], header.split("CPU: ", 1)[1].split(";", 1)[0]


def _key(info: dict) -> tuple:
    return info.get("task"), info.get("method"), info.get("instance", 0), info.get("seed")


def with_reruns(data: dict, reruns: list[dict]) -> dict:
    """`data` with each run of `reruns` (other pytest --benchmark-json files, of the same commit's code) in place of the
    run of the same task, method, instance and seed, marked `rerun`; a run that reused a replaced run (a tuned row on
    its grid run) takes the rerun's curve and seconds. For a run that something else on the machine slowed: its steps
    are the same bits, its seconds are the rerun's."""
    fresh = {_key(b["extra_info"]): b for r in reruns for b in r["benchmarks"] if b["extra_info"].get("kind")}
    out = []
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        key = _key(info)
        source = key[:1] + (info.get("reused"),) + key[2:] if info.get("reused") else None
        if key in fresh:
            measured = [[p.get(k) for k in ("step", "metric", "objective", "retained")] for p in info["curve"]]
            again = [
                [p.get(k) for k in ("step", "metric", "objective", "retained")]
                for p in fresh[key]["extra_info"]["curve"]
            ]
            if measured != again:
                raise ValueError(f"--rerun: {key} is not the same run again: its curve's measures differ")
            bench = dict(fresh[key], extra_info=dict(fresh[key]["extra_info"], rerun=True))
        elif source in fresh:
            again = fresh[source]["extra_info"]
            extra = {
                k: again[k] for k in ("curve", "events", "run_seconds", "final_metric", "seconds_split") if k in again
            }
            bench = dict(bench, extra_info=dict(info, **extra, rerun=True))
        out.append(bench)
    return dict(data, benchmarks=out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="the file written by pytest --benchmark-json")
    parser.add_argument(
        "--rerun", type=Path, action="append", default=[], help="runs made again, alone: they replace the same runs"
    )
    parser.add_argument("--duration", default=None, help="the run's wall time as measured (e.g. `time make bench`)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for REPORT.md, plots, summary.json")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md's results section as it is")
    args = parser.parse_args()
    data = with_reruns(json.loads(args.json.read_text()), [json.loads(p.read_text()) for p in args.rerun])
    if args.duration:
        data = dict(data, duration=args.duration)
    print(write_report(data, args.json, args.out, None if args.no_readme else README, tuple(args.rerun)))


if __name__ == "__main__":
    main()
