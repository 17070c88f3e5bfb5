"""Turn a pytest-benchmark JSON of `pytest benchmarks/` into REPORT.md, summary.json and learning-curve plots.

    python -m benchmarks.report benchmarks/results/benchmark.json

How a curve is read (target, the crossing that counts, medians with misses) is benchmarks.yardstick's, stated in its
docstring and at the top of REPORT.md. The README's results section is rewritten from the same figures.

The report's pieces: its numbers are benchmarks.summary's, a task's tables benchmarks.tables', the sections across
tasks benchmarks.sections', the plots benchmarks.plots' and the README's block benchmarks.readme's; this module writes
the header and puts them together (`write_report`), and takes reruns in (`with_reruns`).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from benchmarks import fixed_target, yardstick
from benchmarks.fmt import fmt
from benchmarks.goals import all_goals
from benchmarks.plots import plot
from benchmarks.readme import (  # noqa: F401 (MARKERS, refresh_readme: importable from here as before)
    MARKERS,
    README,
    README_PLOT,
    RESULTS,
    _update_readme,
    refresh_readme,
)
from benchmarks.real import REAL_TASKS
from benchmarks.scoreboard import board, table, tally
from benchmarks.sections import (
    clock_agreement,
    overhead_table,
    predictors,
    seconds_split_table,
    self_tuning_table,
    set_aside,
    stability_table,
    tolerance_table,
)
from benchmarks.summary import PUBLISHED, _commit_text, summarise
from benchmarks.tables import (  # noqa: F401 (lr_text: importable from here as before)
    detail_table,
    grid_table,
    instance_table,
    lr_text,
    race_table,
)
from benchmarks.tasks import BASELINE, HEADLINE, tasks
from benchmarks.yardstick import RETAINED_TOLERANCE, spearman, tuned_multiple  # noqa: F401 (importable from here as before)

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


def duration_text(data: dict, runs: list[dict]) -> list[str]:
    """How long the run took: as measured around it (`--duration`), and its runs' own seconds summed."""
    own = sum(r["run_seconds"] for r in runs if not r.get("reused"))
    measured = f"{data['duration']} in all, as measured around it; " if data.get("duration") else ""
    return [f"Time: {measured}its {len(runs)} runs took {own / 60:.1f} minutes (reused runs not counted).", ""]


def goals_text(summary: dict, checks: list[tuple[str, bool | None, str]]) -> list[str]:
    """REPORT.md's goals (benchmarks.scoreboard: the shipped default's, per family of tasks), then every check they
    gather and the variants' same checks, row by row."""
    goals, full = board(summary)
    real = set(summary) <= set(REAL_TASKS)
    variants = "benchmarks/real.py's VARIANTS" if real else "effopt-noscale, effopt-guard, effopt-budget"
    runs_it = "`make real` runs" if real else "the full mode runs"
    lacking = (
        "Goals `make real` checks, whose rows this run lacks:"
        if real
        else "Goals the full mode checks (`make bench-full`), whose rows this run lacks:"
    )
    return [
        "## Goals (each checked on this run)",
        "",
        "What the shipped default (`effopt`) promises, per family of tasks (benchmarks/scoreboard.py): a goal is met "
        f"where every check it gathers (the next section, row by row) is met. **{tally(goals)}**.",
        "",
        *table(goals),
        "",
        *(
            [
                lacking,
                "",
                *[f"- {g}" for g in full],
            ]
            + [""]
            if full
            else []
        ),
        "## Every check, row by row",
        "",
        "Each check of benchmarks/goals.py on this run: the default's, which the goals gather, and the same checks of "
        f"its variants ({variants}), which are rows to read, not goals. `not run`: {runs_it} the row, this run did "
        "not.",
        "",
        *table(checks, "check"),
        "",
    ]


def with_targets(runs: list[dict]) -> list[dict]:
    """`runs`, each with the row its task's targets come from (`target_from`): as the run recorded it, else as its
    mode defines the task today (a run made before runs recorded it; adamw for a task no mode defines)."""
    modes = {r.get("mode") for r in runs if "target_from" not in r} & {"quick", "full", "heldout", "real", "smoke"}
    defined = {t.name: t.target_from for mode in sorted(modes) for t in tasks(mode)}
    return [r if "target_from" in r else dict(r, target_from=defined.get(r["task"], BASELINE)) for r in runs]


def defaults_section(summary: dict) -> list[str]:
    """REPORT.md's table of the real model from both defaults, to the fixed target (benchmarks.fixed_target)."""
    table = fixed_target.defaults_table(summary)
    if not table:
        return []
    return [
        "## The real model from both defaults, to the fixed target",
        "",
        "AlgoPerf's fixed target: per case (instance, seed) and measure, the start plus 95% of the gain that "
        "`adamw-tuned` (AdamW at the lr the sweep picks, the sweep free) made by the end of its budget; every row of "
        "both tasks is scored by its steps and training seconds to it, whatever lr it starts from (median over "
        "cases, k/n reached; `never`: the median case did not get there). Best peer: the fewest steps (and apart, "
        f"the fewest seconds) among {', '.join(fixed_target.REAL_PEERS)} at that lr; effopt / best peer: its steps "
        f"and seconds over the best peer's (the first goal: at most {fixed_target.SHARE:g}). Each task's section "
        "has every row's, and the same-lr view (speed-ups over adamw at the task's lr, to adamw's own target).",
        "",
        *table,
        "",
    ]


def write_report(
    data: dict, source: Path, out: Path = RESULTS, readme: Path | None = README, reruns: tuple[Path, ...] = ()
) -> str:
    runs = [b["extra_info"] for b in data["benchmarks"] if b["extra_info"].get("kind") == "speedup"]
    runs = with_targets(runs)
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
        *goals_text(summary, goal_rows),
        *defaults_section(summary),
        *set_aside(summary, goal_rows, "`make real` runs" if set(summary) <= set(REAL_TASKS) else "the full mode runs"),
    ]
    for task, methods in summary.items():
        first = methods.get(BASELINE) or next(iter(methods.values()))
        order = sorted(methods, key=lambda m: (m not in HEADLINE, HEADLINE.index(m) if m in HEADLINE else 0))
        ordered = {m: methods[m] for m in order if not (m.startswith(f"{BASELINE}-") and m.endswith("x"))}
        start_retained = (
            "" if first["initial_retained"] is None else f", retained at the start {first['initial_retained']:.3f}"
        )
        objective = "" if first["objective_target"] is None else f"; objective target {first['objective_target']:.4f}"
        fixed = fixed_target.fixed_table(ordered)
        same_lr = (
            "The race table is the same-lr view (the paper's measure): targets, steps to them and speed-ups from "
            "`adamw` at this task's lr, case by case. AlgoPerf's fixed target is the table after it."
        )
        lines += [
            f"## {task}: {first['regime']}",
            "",
            f"{first['notes']}. Instances {first['instances']}, seeds {first['seeds']} ({first['cases']} cases of "
            f"the baseline); median target {fmt(first['target'], 3)} (start {first['initial_metric']:.3f}"
            f"{start_retained}){objective}.",
            "",
            *([same_lr, ""] if fixed else []),
            race_table(ordered),
            "",
            *fixed,
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
            first["fixed_metric_target"] if fixed else first["target"],
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
