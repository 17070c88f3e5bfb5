"""Turn a pytest-benchmark JSON of `pytest benchmarks/` into REPORT.md, summary.json and learning-curve plots.

    python -m benchmarks.report benchmarks/results/benchmark.json

Target per task and seed: the starting metric plus 95% of the gain the bare optimizer (AdamW) made over its budget.
Steps to target: the first evaluated step at or above it. Seconds to target: training seconds up to that step, probe
and event time included, evaluation time not. Speed-ups are the bare optimizer's figure over the method's, per seed,
then the median over seeds (spread: min..max). The README's results section is rewritten from the same figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

BASELINE = "adamw"
GAIN_SHARE = 0.95
RESULTS = Path(__file__).parent / "results"
README = Path(__file__).parent.parent / "README.md"
MARKERS = ("<!-- report:start -->", "<!-- report:end -->")


def reach(curve: list[dict], target: float) -> tuple[int | None, float | None]:
    for point in curve:
        if point["metric"] >= target:
            return point["step"], point["train_seconds"]
    return None, None


def median_spread(values: list[float]) -> tuple[float | None, str]:
    values = [v for v in values if v is not None]
    if not values:
        return None, ""
    return statistics.median(values), (f"{min(values):.2f}..{max(values):.2f}" if len(values) > 1 else "")


def summarise(runs: list[dict]) -> dict:
    """{task: {method: figures}} from the speed-up runs' extra_info."""
    by_task: dict[str, dict[str, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for run in runs:
        by_task[run["task"]][run["method"]][run["seed"]] = run
    summary = {}
    for task, methods in by_task.items():
        base_runs = methods.get(BASELINE, {})
        targets = {
            seed: r["initial_metric"] + GAIN_SHARE * (r["final_metric"] - r["initial_metric"])
            for seed, r in base_runs.items()
        }
        base_reach = {seed: reach(base_runs[seed]["curve"], t) for seed, t in targets.items()}
        summary[task] = {}
        for method, seeds in methods.items():
            steps, seconds, finals, speed_steps, speed_seconds, accepted, n_events = [], [], [], [], [], [], []
            for seed, r in sorted(seeds.items()):
                finals.append(r["final_metric"])
                accepted.extend(e["accepted"] for e in r["events"])
                n_events.append(len(r["events"]))
                if seed not in targets:
                    continue
                s, t = reach(r["curve"], targets[seed])
                steps.append(s)
                seconds.append(t)
                b_steps, b_seconds = base_reach[seed]
                speed_steps.append(b_steps / s if s and b_steps else None)
                speed_seconds.append(b_seconds / t if t and b_seconds else None)
            first = next(iter(seeds.values()))
            summary[task][method] = {
                "steps_to_target": median_spread(steps)[0],
                "seconds_to_target": median_spread(seconds)[0],
                "final_metric": statistics.median(finals),
                "speedup_steps": median_spread(speed_steps)[0],
                "speedup_seconds": median_spread(speed_seconds)[0],
                "seeds": sorted(seeds),
                "device": first["device_name"],
                # beyond the published shape: what a reader of the report needs too
                "reached": f"{sum(s is not None for s in steps)}/{len(steps)}",
                "speedup_steps_spread": median_spread(speed_steps)[1],
                "speedup_seconds_spread": median_spread(speed_seconds)[1],
                "target": statistics.median(targets.values()) if targets else None,
                "initial_metric": statistics.median(r["initial_metric"] for r in seeds.values()),
                "events": statistics.median(n_events),
                "accepted_multipliers": accepted,
                "regime": first["regime"],
                "notes": first["notes"],
            }
    return summary


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


def foresight_table(runs: list[dict], summary: dict) -> list[str]:
    """Per task: the bare run's early alignment and the wrapper's speed-up, and whether the one predicts the other."""
    rows, points = [], []
    for task, methods in summary.items():
        seen = [r["foresight"] for r in runs if r["task"] == task and r["method"] == BASELINE and r.get("foresight")]
        ours = methods.get("effopt")
        if not seen or not ours:
            continue
        med = {}
        for key in ("cosine", "principal_angle", "energy_k", "top_share"):
            values = [f[key] for f in seen if f[key] is not None]
            med[key] = statistics.median(values) if values else None
        stability = [e["stability"] for r in runs if r["task"] == task and r["method"] == "effopt"
                     for e in r["events"] if e.get("stability") is not None]
        stab = statistics.fmean(stability) if stability else None
        speed = ours["speedup_steps"]
        rows.append(f"| {task} | {ours['regime']} | {seen[0]['early_step']} of {seen[0]['steps']} | "
                    f"{_fmt(med['cosine'], 3)} | {_fmt(med['principal_angle'], 1)} | {_fmt(med['energy_k'], 3)} | "
                    f"{_fmt(med['top_share'], 3)} | {_fmt(stab, 3)} | {_fmt(speed, 2, 'x')} |")
        points.append((med["cosine"], stab, speed or 0.0))  # never reached the target: no speed-up, ranked last
    if not rows:
        return []
    by_cosine = spearman([p[0] for p in points if p[0] is not None], [p[2] for p in points if p[0] is not None])
    by_stability = spearman([p[1] for p in points if p[1] is not None], [p[2] for p in points if p[1] is not None])
    return [
        "## Foresight against speed-up",
        "",
        "Measured on the bare (AdamW) run of each task: the cosine of its update after the first 10% of the steps with "
        "its final update, the mean top-4 principal angle between them, the final update's top-4 energy and the "
        "share of its squared norm in the largest 10% of tensors (`effopt.analysis`). Stability: the mean cosine of "
        "successive accumulated updates that effopt's events recorded on line. Speed-up: effopt's, in steps.",
        "",
        "| task | regime | early step | early cosine | principal angle (deg) | top-4 energy | top-10% share | "
        "event stability | effopt speed-up (steps) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Spearman rank correlation with the speed-up over these {len(rows)} tasks: early cosine "
        f"{_fmt(by_cosine, 2)}, event stability {_fmt(by_stability, 2)} (few tasks: a hint, not a test).",
        "",
    ]


def _fmt(value, digits=2, suffix=""):
    return "never" if value is None else f"{value:.{digits}f}{suffix}"


def speedup_table(task: str, methods: dict) -> str:
    rows = [
        "| method | steps to target | seconds to target | speed-up (steps) | speed-up (seconds) | final metric | "
        "events | multipliers accepted (median, max) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for method, f in methods.items():
        acc = [m for m in f["accepted_multipliers"]]
        mult = f"{statistics.median(acc):.2f}, {max(acc):.2f}" if acc else ""
        spread = f" ({f['speedup_steps_spread']})" if f["speedup_steps_spread"] else ""
        spread_s = f" ({f['speedup_seconds_spread']})" if f["speedup_seconds_spread"] else ""
        steps = "never" if f["steps_to_target"] is None else f"{f['steps_to_target']:.0f}"
        rows.append(
            f"| {method} | {steps} | {_fmt(f['seconds_to_target'], 1)} | {_fmt(f['speedup_steps'], 2, 'x')}{spread} "
            f"| {_fmt(f['speedup_seconds'], 2, 'x')}{spread_s} | {f['final_metric']:.3f} | {f['events']:.0f} | {mult} |"
        )
    return "\n".join(rows)


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


def product_target(summary: dict) -> list[str]:
    """The product's stated target, checked on OPD in the post-training regime, whichever way it goes."""
    methods = summary.get("opd-near")
    if not methods or "effopt" not in methods or BASELINE not in methods:
        return []
    ours, base = methods["effopt"], methods[BASELINE]
    peers = {m: f for m, f in methods.items() if not m.startswith("effopt") and m != BASELINE}
    steps, seconds = ours["speedup_steps"], ours["speedup_seconds"]
    share = None if not seconds else 1 / seconds
    best_peer = max(peers.items(), key=lambda kv: kv[1]["speedup_steps"] or 0, default=(None, None))
    checks = [
        ("at most a third of AdamW's steps (speed-up >= 3x)", steps is not None and steps >= 3,
         f"{_fmt(steps, 2, 'x')}" + ("" if steps is None or steps >= 3 else f", short by {3 - steps:.2f}x")),
        ("at most 40% of its wall-clock (speed-up >= 2.5x)", seconds is not None and seconds >= 2.5,
         f"{_fmt(share and 100 * share, 0, '%')} of AdamW's seconds"),
        ("a final metric no lower", ours["final_metric"] >= base["final_metric"],
         f"{ours['final_metric']:.3f} vs {base['final_metric']:.3f}"),
        ("ahead of every peer", all((steps or 0) > (f["speedup_steps"] or 0) for f in peers.values()),
         f"best peer {best_peer[0]} at {_fmt(best_peer[1] and best_peer[1]['speedup_steps'], 2, 'x')}"),
    ]
    lines = ["## Against the product's target (opd-near, effopt's default)", "",
             "| target | met | measured |", "|---|---|---|"]
    lines += [f"| {what} | {'yes' if ok else 'NO'} | {measured} |" for what, ok, measured in checks]
    return lines + [""]


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


def write_report(data: dict, source: Path, out: Path = RESULTS, readme: Path | None = README) -> str:
    runs = [b["extra_info"] for b in data["benchmarks"] if b["extra_info"].get("kind") == "speedup"]
    overhead = [b["extra_info"] for b in data["benchmarks"] if b["extra_info"].get("kind") == "overhead"]
    summary = summarise(runs)
    out.mkdir(parents=True, exist_ok=True)
    published = {
        task: {m: {k: f[k] for k in ("steps_to_target", "seconds_to_target", "final_metric", "speedup_steps",
                                     "speedup_seconds", "seeds", "device")} for m, f in methods.items()}
        for task, methods in summary.items()
    }
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
        f"Target: the starting metric plus {GAIN_SHARE:.0%} of the gain that {BASELINE} made over its budget, per seed. "
        "Steps to target are counted at evaluation points; seconds are training seconds (probes and events included, "
        "evaluation excluded). Speed-ups are AdamW's figure over the method's (higher is better), median over seeds "
        "with the spread in brackets; `never` means the target was not reached within the budget.",
        "",
    ]
    lines += product_target(summary)
    for task, methods in summary.items():
        first = next(iter(methods.values()))
        lines += [
            f"## {task}: {first['regime']}",
            "",
            f"{first['notes']}. Seeds {first['seeds']}; target {_fmt(first['target'], 3)} "
            f"(start {first['initial_metric']:.3f}).",
            "",
            speedup_table(task, methods),
            "",
            f"![{task}]({task}.png)",
            "",
        ]
        plot(task, [r for r in runs if r["task"] == task], out / f"{task}.png")
    lines += foresight_table(runs, summary)
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
        f"Measured by `make bench` (mode `{mode}`, device `{device}`); the full report with every method, seed and "
        "plot is [benchmarks/results/REPORT.md](benchmarks/results/REPORT.md).",
        "",
        "| task | regime | effopt speed-up (steps) | effopt speed-up (seconds) | effopt final | AdamW final | "
        "best peer (steps) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for task, methods in summary.items():
        ours, base = methods.get("effopt"), methods.get(BASELINE)
        if not ours or not base:
            continue
        peers = {m: f for m, f in methods.items() if not m.startswith("effopt") and m != BASELINE}
        best = max(peers.items(), key=lambda kv: kv[1]["speedup_steps"] or 0, default=None)
        best_text = f"{best[0]} {_fmt(best[1]['speedup_steps'], 2, 'x')}" if best else ""
        rows.append(
            f"| {task} | {ours['regime']} | {_fmt(ours['speedup_steps'], 2, 'x')} | "
            f"{_fmt(ours['speedup_seconds'], 2, 'x')} | {ours['final_metric']:.3f} | {base['final_metric']:.3f} | "
            f"{best_text} |"
        )
    plots = [f"![{task}](benchmarks/results/{task}.png)" for task in summary if "opd" in task][:1]
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
