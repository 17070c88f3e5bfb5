"""One method's rows in two runs of the race, case by case: what a change to it bought and what it cost.

    python -m benchmarks.compare OLD.json NEW.json --method effopt --out benchmarks/results/step-scale

Both files are pytest-benchmark JSONs of `pytest benchmarks/`. Every case (task, instance, seed) of `--method` in NEW
is read against the baseline run (`adamw`, AdamW at the task's lr) of the same case, taken from NEW where it holds one
and else from OLD (a baseline does not depend on the method, so an OLD baseline is the same run). Speed-ups are the
baseline's steps to its own target over the method's (benchmarks.yardstick: a miss counts as 0x), per case, then the
median per task; retained is the retained skill at the end (the mean of the last 3 points).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from benchmarks import yardstick
from benchmarks.race import BASELINE


def speedup_runs(path: Path) -> dict[tuple, dict]:
    """{(task, method, instance, seed): extra_info} of a benchmark JSON's race runs."""
    data = json.loads(Path(path).read_text())
    runs = [b["extra_info"] for b in data["benchmarks"] if b["extra_info"].get("kind") == "speedup"]
    return {(r["task"], r["method"], r.get("instance", 0), r["seed"]): r for r in runs}


def case_figures(run: dict, baseline: dict) -> dict:
    """Speed-up over the baseline to its metric and objective targets, and the final retained skill."""
    targets = yardstick.targets_of(baseline)
    out: dict = {"retained": yardstick.tail(run["curve"], "retained")}
    for key, higher in yardstick.MEASURES:
        base_steps, _ = yardstick.reach(baseline["curve"], key, targets[key], higher)
        steps, _ = yardstick.reach(run["curve"], key, targets[key], higher)
        out[key] = None if targets[key] is None else (yardstick.ratio(base_steps, steps) or 0.0)
    out["events"] = [round(e["accepted"], 2) for e in run.get("events", [])]
    return out


def compare(old: dict[tuple, dict], new: dict[tuple, dict], method: str) -> dict[str, list[dict]]:
    """{task: [{instance, seed, old: figures, new: figures}]} for every case of `method` that both runs hold."""
    rows: dict[str, list[dict]] = {}
    for (task, m, instance, seed), run in new.items():
        before = old.get((task, m, instance, seed))
        baseline = new.get((task, BASELINE, instance, seed)) or old.get((task, BASELINE, instance, seed))
        if m != method or before is None or baseline is None:
            continue
        rows.setdefault(task, []).append(
            dict(
                instance=instance,
                seed=seed,
                old=case_figures(before, baseline),
                new=case_figures(run, baseline),
            )
        )
    return rows


def _x(value: float | None) -> str:
    return "n/a" if value is None else "never" if value == 0 else f"{value:.2f}x"


def _median(cases: list[dict], side: str, key: str) -> float | None:
    values = [c[side][key] for c in cases if c[side][key] is not None]
    return statistics.median(values) if values else None


def report(rows: dict[str, list[dict]], method: str, old_name: str, new_name: str) -> str:
    lines = [
        f"# `{method}`: {old_name} -> {new_name}",
        "",
        f"Made by `python -m benchmarks.compare {old_name} {new_name} --method {method}` (benchmarks/compare.py says how"
        " the figures are read). Speed-up over `adamw` at the task's lr in steps to its target, old -> new; retained:"
        " the retained skill at the end.",
        "",
        "| task | metric (median) | objective (median) | cases |",
        "|---|---:|---:|---:|",
    ]
    for task, cases in rows.items():
        metric = f"{_x(_median(cases, 'old', 'metric'))} -> {_x(_median(cases, 'new', 'metric'))}"
        objective = f"{_x(_median(cases, 'old', 'objective'))} -> {_x(_median(cases, 'new', 'objective'))}"
        lines.append(f"| {task} | {metric} | {objective} | {len(cases)} |")
    lines += ["", "| task | instance | seed | metric | objective | retained | new events (accepted, first 8) |"]
    lines.append("|---|---:|---:|---:|---:|---:|---|")
    for task, cases in rows.items():
        for c in cases:
            old, new = c["old"], c["new"]
            retained = "n/a" if new["retained"] is None else f"{old['retained']:.3f} -> {new['retained']:.3f}"
            lines.append(
                f"| {task} | {c['instance']} | {c['seed']} | {_x(old['metric'])} -> {_x(new['metric'])} | "
                f"{_x(old['objective'])} -> {_x(new['objective'])} | {retained} | {new['events'][:8]} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="the race's JSON before the change")
    parser.add_argument("new", type=Path, help="the race's JSON after it")
    parser.add_argument("--method", default="effopt", help="the row that changed")
    parser.add_argument("--out", type=Path, default=None, help="write REPORT.md here (default: print it)")
    args = parser.parse_args(argv)
    rows = compare(speedup_runs(args.old), speedup_runs(args.new), args.method)
    text = report(rows, args.method, args.old.name, args.new.name)
    if args.out is None:
        print(text, end="")
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "REPORT.md").write_text(text)


if __name__ == "__main__":
    main()
