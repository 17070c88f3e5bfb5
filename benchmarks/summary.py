"""The report's numbers: a run's summary (`summarise`: per task and method, medians over the cases with each case's
figures beside them; `PUBLISHED`: what summary.json keeps of it) and AlgoPerf's two rulesets (`self_tuning`).
`from_published` gives summary.json's subset back the figures the goals and the README's block read.

How a curve is read (target, the crossing that counts, medians with misses) is benchmarks.yardstick's.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from benchmarks import fixed_target, yardstick
from benchmarks.fmt import median_of
from benchmarks.tasks import BASELINE, TUNED
from benchmarks.yardstick import MEASURES, median_never, ratio, reach, reached, tail, targets_of


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
        # AlgoPerf's fixed target where the task's targets come from another row than adamw (benchmarks.fixed_target)
        target_from = next(r.get("target_from", BASELINE) for cases in methods.values() for r in cases.values())
        fixed = None if target_from == BASELINE else {c: targets_of(r) for c, r in methods.get(target_from, {}).items()}
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
                if fixed is not None:
                    per_seed[case] |= fixed_target.case_fields(r["curve"], fixed.get(case, {}))
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
            if fixed is not None:
                summary[task][method] |= fixed_target.figures(per_seed.values()) | {"target_from": target_from}
            per_instance = summary[task][method]["per_instance"]
            worst = [f["speedup_decisive"] for f in per_instance.values()]
            summary[task][method]["worst_instance_speedup"] = min(worst) if worst and None not in worst else None
        self_tuning(summary[task])
    return summary


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
    # the fixed target's, where a task has one (benchmarks.fixed_target)
    "target_from",
    *[key for keys in fixed_target.FIELDS.values() for key in keys],
)


#: The rows that the self-tuning view scores against adamw-tuned: the lr-free ones pay for no sweep, the tuned ones do
SELF_TUNED = ("effopt", "effopt-noscale", "prodigy", "effopt-budget", "effopt-guard")


def _decisive(case: dict) -> tuple[float | None, float | None]:
    """(steps, seconds) to the case's decisive target: the metric's where it has one, else the objective's."""
    if case["metric_target"] is not None:
        return case["steps_to_target"], case["seconds_to_target"]
    return case["steps_to_objective_target"], case["seconds_to_objective_target"]


def is_grid(method: str) -> bool:
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
    grid = {m: f for m, f in methods.items() if m == BASELINE or is_grid(m)}
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


def _commit_text(runs) -> str | None:
    """The commit that made `runs` (with " (dirty tree)" where a tree differed from it); several, comma-joined."""
    made = sorted({f"{r['commit']}{' (dirty tree)' if r.get('dirty') else ''}" for r in runs if r.get("commit")})
    return ", ".join(made) if made else None


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
            | (fixed_target.figures(f["per_seed"].values()) if "target_from" in f else {})
            for method, f in methods.items()
        }
    return out
