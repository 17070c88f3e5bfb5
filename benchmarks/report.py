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
from benchmarks.tasks import BASELINE, HEADLINE, TUNED, grid_name
from benchmarks.yardstick import median_never, ratio, reach, reached, tail

RESULTS = Path(__file__).parent / "results"
README = Path(__file__).parent.parent / "README.md"
MARKERS = ("<!-- report:start -->", "<!-- report:end -->")
#: adamw-tuned may cost at most this much of the retained skill (absolute, on a 0..1 exact match) against the task's
#: lr: about twice the noise of a smoothed retained figure on 256 examples.
RETAINED_TOLERANCE = 0.02
MEASURES = (("metric", True), ("objective", False))  # (curve key, higher is better)


def _reach_all(curve: list[dict], targets: dict) -> dict:
    return {key: reach(curve, key, targets.get(key), higher) for key, higher in MEASURES}


def tuned_multiple(first_seed: dict[str, dict]) -> float:
    """The lr multiple a user would pick from AdamW's grid on one seed: among the grid points whose final retained
    skill is within RETAINED_TOLERANCE of the task lr's, the one that reaches the task-lr run's target in the fewest
    steps (ties: the smaller lr). `first_seed` maps `adamw` and `adamw-<k>x` to runs (dicts with `curve` and
    `lr_multiple`)."""
    base = first_seed[BASELINE]["curve"]
    goal = yardstick.target(base, "metric")
    floor = tail(base, "retained")
    best = None
    for run in sorted(first_seed.values(), key=lambda r: r["lr_multiple"]):
        kept = tail(run["curve"], "retained")
        if floor is not None and (kept is None or kept < floor - RETAINED_TOLERANCE):
            continue
        steps, _ = reach(run["curve"], "metric", goal)
        if steps is not None and (best is None or steps < best[0]):
            best = (steps, run["lr_multiple"])
    return 1.0 if best is None else best[1]


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(runs: list[dict]) -> dict:
    """{task: {method: figures}} from the speed-up runs' extra_info (see summary.json in the README)."""
    by_task: dict[str, dict[str, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for run in runs:
        by_task[run["task"]][run["method"]][run["seed"]] = run
    summary = {}
    for task, methods in by_task.items():
        base_runs = methods.get(BASELINE, {})
        targets = {seed: {key: yardstick.target(r["curve"], key, higher) for key, higher in MEASURES}
                   for seed, r in base_runs.items()}
        base_reach = {seed: _reach_all(base_runs[seed]["curve"], t) for seed, t in targets.items()}
        tuned_runs = methods.get(TUNED, {})
        tuned_reach = {seed: _reach_all(r["curve"], targets[seed]) for seed, r in tuned_runs.items() if seed in targets}
        summary[task] = {}
        for method, seeds in methods.items():
            per_seed, speed, speed_s, speed_tuned, speed_obj, accepted, n_events = {}, [], [], [], [], [], []
            for seed, r in sorted(seeds.items()):
                accepted.extend(e["accepted"] for e in r["events"])
                n_events.append(len(r["events"]))
                got = _reach_all(r["curve"], targets.get(seed, {}))
                steps, seconds = got["metric"]
                at_target = next((p.get("retained") for p in r["curve"] if p["step"] == steps), None)
                per_seed[str(seed)] = {
                    "steps_to_target": steps,
                    "seconds_to_target": seconds,
                    "steps_to_objective_target": got["objective"][0],
                    "seconds_to_objective_target": got["objective"][1],
                    "final_metric": tail(r["curve"], "metric"),
                    "final_objective": tail(r["curve"], "objective"),
                    "retained_final": tail(r["curve"], "retained"),
                    "retained_at_target": at_target,
                    "drift_final": tail(r["curve"], "drift"),
                }
                if seed in base_reach:
                    speed.append(ratio(base_reach[seed]["metric"][0], steps))
                    speed_s.append(ratio(base_reach[seed]["metric"][1], seconds))
                    speed_obj.append(ratio(base_reach[seed]["objective"][0], got["objective"][0]))
                if seed in tuned_reach:
                    speed_tuned.append(ratio(tuned_reach[seed]["metric"][0], steps))
            first = seeds[min(seeds)]
            column = {k: [f[k] for f in per_seed.values()] for k in next(iter(per_seed.values()))}
            summary[task][method] = {
                "steps_to_target": median_never(column["steps_to_target"]),
                "seconds_to_target": median_never(column["seconds_to_target"]),
                "final_metric": _median(column["final_metric"]),
                "speedup_steps": _median(speed),
                "speedup_seconds": _median(speed_s),
                "seeds": sorted(seeds),
                "device": first["device_name"],
                "lr": first.get("lr"),
                "lr_multiple": first.get("lr_multiple"),
                "retained_final": _median(column["retained_final"]),
                "steps_to_objective_target": median_never(column["steps_to_objective_target"]),
                "seconds_to_objective_target": median_never(column["seconds_to_objective_target"]),
                "speedup_steps_vs_tuned": _median(speed_tuned),
                "per_seed": per_seed,
                # for the report's tables
                "reached": reached(column["steps_to_target"]),
                "reached_objective": reached(column["steps_to_objective_target"]),
                "speedup_steps_per_seed": speed,
                "speedup_seconds_per_seed": speed_s,
                "speedup_objective_per_seed": speed_obj,
                "speedup_objective": _median(speed_obj),
                "final_objective": _median(column["final_objective"]),
                "retained_at_target": _median(column["retained_at_target"]),
                "drift_final": _median(column["drift_final"]),
                "target": _median([t["metric"] for t in targets.values()]),
                "objective_target": _median([t["objective"] for t in targets.values()]),
                "initial_metric": statistics.median(r["initial_metric"] for r in seeds.values()),
                "initial_retained": _median([r["curve"][0].get("retained") for r in seeds.values()]),
                "budget_steps": first["curve"][-1]["step"],
                "first_seed_run_seconds": first.get("run_seconds", 0.0),
                "events": statistics.median(n_events),
                "accepted_multipliers": accepted,
                "reused": first.get("reused"),
                "regime": first["regime"],
                "notes": first["notes"],
            }
    return summary


PUBLISHED = ("steps_to_target", "seconds_to_target", "final_metric", "speedup_steps", "speedup_seconds", "seeds",
             "device", "lr", "retained_final", "steps_to_objective_target", "seconds_to_objective_target",
             "speedup_steps_vs_tuned", "per_seed")


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


def stability_table(runs: list[dict], summary: dict) -> list[str]:
    """Per task: the mean direction stability that effopt's events recorded, against its speed-up."""
    rows, points = [], []
    for task, methods in summary.items():
        ours = methods.get("effopt")
        stability = [e["stability"] for r in runs if r["task"] == task and r["method"] == "effopt"
                     for e in r["events"] if e.get("stability") is not None]
        if not ours or not stability:
            continue
        stab = statistics.fmean(stability)
        rows.append(f"| {task} | {ours['regime']} | {stab:.3f} | {_times(ours['speedup_steps'])} |")
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
        + (f"{rho:.2f} (few tasks: a hint, not a test)." if rho is not None
           else "n/a (it needs three tasks that vary)."),
        "",
    ]


def _fmt(value, digits=2, suffix=""):
    return "never" if value is None else f"{value:.{digits}f}{suffix}"


def lr_text(lr: float | None) -> str:
    return "free" if lr is None else f"{lr:.3g}"


def _na(value, digits=3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _times(value) -> str:
    return "n/a" if value is None else "never" if value == 0 else f"{value:.2f}x"


def _steps(f: dict, key: str, reached_key: str) -> str:
    """Median steps with the seeds' spread and k/n reached, e.g. `90 [60..140] 3/3`."""
    values = [s[key] for s in f["per_seed"].values()]
    median = median_never(values)
    text = "never" if median is None else f"{median:.0f}"
    bounds = yardstick.spread(values)
    if bounds:
        text += " [" + "..".join("never" if math.isinf(b) else f"{b:.0f}" for b in bounds) + "]"
    return f"{text} {f[reached_key]}"


def _seconds(f: dict, key: str) -> str:
    value = median_never([s[key] for s in f["per_seed"].values()])
    return "never" if value is None else f"{value:.1f}"


def _speedups(values: list) -> str:
    """The median speed-up over seeds [min..max]; `(k/n defined)` where the reference missed on some seeds."""
    finite = [v for v in values if v is not None]
    if not finite:
        return "n/a"
    text = _times(statistics.median(finite))
    if len(finite) > 1:
        text += f" [{_times(min(finite))}..{_times(max(finite))}]"
    if len(finite) < len(values):
        text += f" ({len(finite)}/{len(values)} defined)"
    return text


def race_table(methods: dict) -> str:
    objective = any(f["objective_target"] is not None for f in methods.values())
    retained = any(f["retained_final"] is not None for f in methods.values())
    head = ["method", "lr", "steps to target", "seconds"]
    if objective:
        head += ["steps to objective target", "seconds"]
    head += ["final metric"] + (["final objective"] if objective else []) + (["final retained"] if retained else [])
    head += ["speed-up vs adamw (steps)", "(seconds)"] + (["speed-up vs adamw (objective)"] if objective else [])
    head += ["speed-up vs adamw-tuned (steps)"]
    rows = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for method, f in methods.items():
        cells = [method, lr_text(f["lr"]), _steps(f, "steps_to_target", "reached"), _seconds(f, "seconds_to_target")]
        if objective:
            cells += [_steps(f, "steps_to_objective_target", "reached_objective"),
                      _seconds(f, "seconds_to_objective_target")]
        cells.append(_na(f["final_metric"], 3))
        if objective:
            cells.append(_na(f["final_objective"], 3))
        if retained:
            cells.append(_na(f["retained_final"], 3))
        cells += [_speedups(f["speedup_steps_per_seed"]), _speedups(f["speedup_seconds_per_seed"])]
        if objective:
            cells.append(_speedups(f["speedup_objective_per_seed"]))
        cells.append(_times(f["speedup_steps_vs_tuned"]))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def grid_table(methods: dict) -> list[str]:
    grid = {m: f for m, f in methods.items() if m == BASELINE or m.startswith(f"{BASELINE}-") and m[-1] == "x"}
    tuned = methods.get(TUNED)
    if len(grid) < 2 or tuned is None:
        return []
    rows = ["| lr | steps to target (seed 0) | steps to objective target | final metric | final retained | "
            "retained at target (that point) | chosen |", "|---|---:|---:|---:|---:|---:|---|"]
    for method, f in sorted(grid.items(), key=lambda kv: kv[1]["lr"]):
        first = f["per_seed"][str(f["seeds"][0])]
        chosen = "yes" if math.isclose(f["lr"], tuned["lr"]) else ""
        rows.append(f"| {f['lr']:.3g} ({f['lr_multiple']:g}x) | {_fmt(first['steps_to_target'], 0)} | "
                    f"{_fmt(first['steps_to_objective_target'], 0)} | {_na(first['final_metric'], 3)} | "
                    f"{_na(first['retained_final'], 3)} | {_na(first['retained_at_target'], 3)} | {chosen} |")
    extra = [f for m, f in grid.items() if m != BASELINE]
    steps = sum(f["budget_steps"] for f in extra)
    seconds = sum(f["first_seed_run_seconds"] for f in extra)
    return [f"AdamW's lr grid on seed 0, from which `{TUNED}` is chosen: the fewest steps to the target among the lrs "
            f"whose final retained skill is within {RETAINED_TOLERANCE} of the task lr's. The sweep cost "
            f"{steps} steps and {seconds / 60:.1f} minutes of runs (evaluation included) beyond the task-lr run. On "
            f"seed 0, `{TUNED}` is the chosen grid run itself: picked for being fastest on that seed, which favours "
            "it.",
            "", *rows, ""]


def detail_table(methods: dict) -> str:
    rows = ["| method | seeds | events (median) | multipliers accepted (median, max) | "
            "retained at target (that point) | "
            "drift (KL to start on the retained skill) |", "|---|---|---:|---|---:|---:|"]
    for method, f in methods.items():
        acc = f["accepted_multipliers"]
        mult = f"{statistics.median(acc):.2f}, {max(acc):.2f}" if acc else ""
        rows.append(f"| {method} | {f['seeds']} | {f['events']:.0f} | {mult} | {_na(f['retained_at_target'], 3)} | "
                    f"{_na(f['drift_final'], 4)} |")
    return "\n".join(rows)


#: The goals of the method work (issue "win the honest race"), each checked on every run of the report.
RACE_TASKS = ("opd-near", "sft", "echodistill")
#: the default, the default without its persistent step size, and the default with a guard on the retained skill
OURS = ("effopt", "effopt-noscale", "effopt-guard")
NO_HARM_TASKS = ("opd-grpo", "opd-far", "classic")


def goals(summary: dict) -> list[tuple[str, bool | None, str]]:
    """(goal, met (None: not measured in this run), measured) for each goal."""
    out = []
    for task, name in [(task, name) for name in OURS for task in RACE_TASKS]:
        m = summary.get(task, {})
        ours, rivals = m.get(name), [m.get(TUNED), m.get("prodigy")]
        if not ours or not all(rivals):
            out.append((f"{task}: {name} at the task lr reaches both targets no later than adamw-tuned and prodigy, "
                        "final retained no more than 0.01 below the better of them", None, "not run"))
            continue
        def no_later(key: str) -> bool:  # effopt must get there, and no later than either rival (a rival may miss)
            return ours[key] is not None and all(r[key] is None or ours[key] <= r[key] for r in rivals)

        ok_obj = ours["objective_target"] is None or no_later("steps_to_objective_target")
        kept = [f["retained_final"] for f in rivals if f["retained_final"] is not None]
        ok_kept = ours["retained_final"] is None or not kept or ours["retained_final"] >= max(kept) - 0.01
        out.append((f"{task}: {name} at the task lr reaches both targets no later than adamw-tuned and prodigy, "
                    "final retained no more than 0.01 below the better of them", no_later("steps_to_target") and ok_obj
                    and ok_kept,
                    f"steps {_fmt(ours['steps_to_target'], 0)} vs {_fmt(rivals[0]['steps_to_target'], 0)} / "
                    f"{_fmt(rivals[1]['steps_to_target'], 0)}; objective {_fmt(ours['steps_to_objective_target'], 0)} "
                    f"vs {_fmt(rivals[0]['steps_to_objective_target'], 0)} / "
                    f"{_fmt(rivals[1]['steps_to_objective_target'], 0)}; retained {_na(ours['retained_final'], 3)} "
                    f"vs {_na(rivals[0]['retained_final'], 3)} / {_na(rivals[1]['retained_final'], 3)}"))
    for task in RACE_TASKS:
        m = summary.get(task, {})
        ours, tuned = m.get("effopt-tuned"), m.get(TUNED)
        if not ours or not tuned:
            continue
        v = ours["speedup_steps_vs_tuned"]
        out.append((f"{task}: effopt-tuned needs at most 1/1.5 of adamw-tuned's steps to the task-lr target, final "
                    "metric no lower",
                    v is not None and v >= 1.5 and ours["final_metric"] >= tuned["final_metric"],
                    f"{_times(v)}; final {ours['final_metric']:.3f} vs {tuned['final_metric']:.3f}"))
    for name in OURS:
        near = summary.get("opd-near", {}).get(name)
        if not near:
            continue
        per = near["speedup_steps_per_seed"]
        out.append((f"opd-near: {name} at least 3x fewer steps and 2.5x fewer seconds than adamw, no seed below 2x in "
                    "steps",
                    (near["speedup_steps"] or 0) >= 3 and (near["speedup_seconds"] or 0) >= 2.5
                    and all((v or 0) >= 2 for v in per),
                    f"steps {_speedups(per)}, seconds {_speedups(near['speedup_seconds_per_seed'])}"))
    for task, name in [(task, name) for name in OURS for task in NO_HARM_TASKS]:
        ours = summary.get(task, {}).get(name)
        if not ours:
            continue
        both = ours["speedup_steps_per_seed"] + ours["speedup_seconds_per_seed"]
        out.append((f"{task}: {name} does no harm, at least 0.95x of adamw's steps and seconds, every seed",
                    len(both) == 2 * len(ours["seeds"]) and all(v is not None and v >= 0.95 for v in both),
                    f"steps {_speedups(ours['speedup_steps_per_seed'])}, "
                    f"seconds {_speedups(ours['speedup_seconds_per_seed'])}"))
    return out


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


def plot(task: str, runs: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4))
    colours = {}
    for run in sorted(runs, key=lambda r: (r["method"], r["seed"])):
        colour = colours.setdefault(run["method"], f"C{len(colours)}")
        label = run["method"] if run["seed"] == min(r["seed"] for r in runs if r["method"] == run["method"]) else None
        steps = [p["step"] for p in run["curve"]]
        seconds = [p["train_seconds"] for p in run["curve"]]
        metric = [p["metric"] for p in run["curve"]]
        by_step.plot(steps, metric, color=colour, label=label, alpha=0.85, lw=2 if run["method"] == "effopt" else 1.2)
        by_time.plot(seconds, metric, color=colour, alpha=0.85, lw=2 if run["method"] == "effopt" else 1.2)
    by_step.set_xlabel("optimizer step")
    by_time.set_xlabel("training seconds (probes included, evaluation excluded)")
    for ax in (by_step, by_time):
        ax.set_ylabel("metric (higher is better)")
        ax.grid(alpha=0.3)
    by_step.legend(fontsize=8)
    fig.suptitle(f"{task} ({runs[0]['regime']})")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


RULES = (
    "How curves are read (benchmarks/yardstick.py): each curve is smoothed by a trailing mean over "
    f"{yardstick.SMOOTH} evaluation points. Target, per task, seed and measure: the start plus "
    f"{yardstick.GAIN_SHARE:.0%} of the gain that `{BASELINE}` (AdamW at the task's lr) made by its end (the mean of "
    f"its last {yardstick.SMOOTH} points); the task metric is higher-is-better, the objective (a validation loss on "
    "data no probe sees) lower-is-better. Steps to target: the first evaluation point from which the smoothed curve "
    "stays at or beyond the target to the end of the run; `never` if it does not stay. Seconds: training seconds at "
    "that point (probes and events included, evaluation excluded). Over seeds: medians with misses counted as never, "
    "[min..max] over seeds and k/n reached; a speed-up is the reference's steps (or seconds) over the run's, per seed "
    "(a miss counts as 0x, shown as never), then the median. Final figures are the mean of the last "
    f"{yardstick.SMOOTH} points. Retained: exact match on a skill the model had at the start and the post-training "
    "does not train (OPD and SFT: digit reversal; EchoDistill: answers on clean audio). Note that effopt's probe is "
    "a validation loss of the same kind as the objective, on a disjoint split (EchoDistill's also includes clean "
    "audio): a signal that AdamW and Prodigy do not get, and the method's whole point."
)


def write_report(data: dict, source: Path, out: Path = RESULTS, readme: Path | None = README) -> str:
    runs = [b["extra_info"] for b in data["benchmarks"] if b["extra_info"].get("kind") == "speedup"]
    overhead = [b["extra_info"] for b in data["benchmarks"] if b["extra_info"].get("kind") == "overhead"]
    summary = summarise(runs)
    out.mkdir(parents=True, exist_ok=True)
    published = {task: {m: {k: f[k] for k in PUBLISHED} for m, f in methods.items()}
                 for task, methods in summary.items()}
    (out / "summary.json").write_text(json.dumps(published, indent=1) + "\n")

    mode = runs[0]["mode"] if runs else "?"
    machine = data.get("machine_info", {})
    device = runs[0]["device_name"] if runs else "cpu"
    lines = [
        "# effopt benchmark report",
        "",
        f"Mode `{mode}`, device `{device}` ({machine.get('cpu', {}).get('brand_raw', 'unknown CPU')}, "
        f"{machine.get('cpu', {}).get('count', '?')} cores), {data.get('datetime', '')[:19]}; made from "
        f"`{source.name}` by `python -m benchmarks.report {source.as_posix()}`.",
        "",
        RULES,
        "",
        "## Goals (each checked on this run)",
        "",
        "| goal | met | measured |",
        "|---|---|---|",
        *[f"| {what} | {'not run' if ok is None else 'yes' if ok else 'NO'} | {measured} |"
          for what, ok, measured in goals(summary)],
        "",
    ]
    for task, methods in summary.items():
        first = methods.get(BASELINE) or next(iter(methods.values()))
        order = sorted(methods, key=lambda m: (m not in HEADLINE, HEADLINE.index(m) if m in HEADLINE else 0))
        ordered = {m: methods[m] for m in order if not (m.startswith(f"{BASELINE}-") and m.endswith("x"))}
        start_retained = ("" if first["initial_retained"] is None
                          else f", retained at the start {first['initial_retained']:.3f}")
        objective = "" if first["objective_target"] is None else f"; objective target {first['objective_target']:.4f}"
        lines += [
            f"## {task}: {first['regime']}",
            "",
            f"{first['notes']}. Seeds {first['seeds']}; target {_fmt(first['target'], 3)} (start "
            f"{first['initial_metric']:.3f}{start_retained}){objective}.",
            "",
            race_table(ordered),
            "",
            *grid_table(methods),
            detail_table(ordered),
            "",
            f"![{task}]({task}.png)",
            "",
        ]
        plot(task, [r for r in runs if r["task"] == task], out / f"{task}.png")
    lines += stability_table(runs, summary)
    if overhead:
        lines += ["## Overhead", "", f"Threads: {overhead[0]['threads']}.", "", overhead_table(overhead), ""]
    report = "\n".join(lines)
    (out / "REPORT.md").write_text(report)
    if readme is not None:
        _update_readme(readme, summary, mode, device)
    return report


def _update_readme(readme: Path, summary: dict, mode: str, device: str) -> None:
    if not readme.exists() or MARKERS[0] not in readme.read_text():
        return
    rows = [
        f"Measured by `make bench` (mode `{mode}`, device `{device}`); every method, seed, the lr grid and the plots "
        "are in [benchmarks/results/REPORT.md](benchmarks/results/REPORT.md), which states how curves are read. Steps "
        "to target: median over seeds, k/n seeds reached; objective: a validation loss on held-out data.",
        "",
        "| task | method | lr | steps to target | steps to objective target | final metric | final retained |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for task, methods in summary.items():
        for method in HEADLINE + ("effopt-paper",):
            f = methods.get(method)
            if f is None or (method == "effopt-paper" and TUNED in methods):
                continue
            obj = "" if f["objective_target"] is None else _steps(f, "steps_to_objective_target", "reached_objective")
            rows.append(f"| {task} | {method} | {lr_text(f['lr'])} | {_steps(f, 'steps_to_target', 'reached')} | {obj} | "
                        f"{_na(f['final_metric'], 3)} | {_na(f['retained_final'], 3)} |")
    plots = [f"![{task}](benchmarks/results/{task}.png)" for task in summary if task == "opd-near"]
    text = readme.read_text()
    start, end = text.index(MARKERS[0]) + len(MARKERS[0]), text.index(MARKERS[1])
    readme.write_text(text[:start] + "\n" + "\n".join(rows + [""] + plots) + "\n" + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="the file written by pytest --benchmark-json")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for REPORT.md, plots, summary.json")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md's results section as it is")
    args = parser.parse_args()
    print(write_report(json.loads(args.json.read_text()), args.json, args.out, None if args.no_readme else README))


if __name__ == "__main__":
    main()
