"""The README's results block, between its MARKERS: the goal tally and the goals (benchmarks.scoreboard), the real
model from both defaults to the fixed target (where `make real` has run), one headline row per task (the real model's
first) and the headline plot, from summary.json alone (`refresh_readme`) or from a report being written
(benchmarks.report.write_report).
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import fixed_target
from benchmarks.fmt import na, times
from benchmarks.scoreboard import board, table, tally
from benchmarks.summary import from_published
from benchmarks.tasks import BASELINE, TUNED

RESULTS = Path(__file__).parent / "results"  #: the committed reports: REPORT.md, summary.json, the plots
README = Path(__file__).parent.parent / "README.md"
MARKERS = ("<!-- report:start -->", "<!-- report:end -->")
README_PLOT = "opd-near"  #: the task whose plot, with the headline rows only, the README shows
#: `make real`'s summary: the real model's race, reported on its own; its rows come first in the README's block
REAL_SUMMARY = RESULTS / "real" / "summary.json"
#: the README's headline table: each of these rows against adamw at the task's lr
README_ROWS = ("effopt", TUNED, "prodigy")


def scoreboard(summary: dict, real: dict | None = None) -> list[str]:
    """The README's first lines: the goal tally and the goals (benchmarks.scoreboard), the real model's first where
    `make real` has run (`summary`, `real`: from_published's). A goal whose rows the run lacks is the full mode's
    report's, not in the tally."""
    goals = (board(real)[0] if real else []) + board(summary)[0]
    return [
        f"**Goals: {tally(goals)}** (what the shipped default, `effopt`, promises, per family of tasks: the real "
        "model's checked by `make real`, the rest by `make bench`; each goal's checks row by row, and the variants', "
        "in [REPORT.md](benchmarks/results/REPORT.md#goals-each-checked-on-this-run)).",
        "",
        *table(goals),
    ]


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


def defaults(real: dict) -> list[str]:
    """The real model from both defaults, to AlgoPerf's fixed target (benchmarks.fixed_target), where `make real` has
    run: the README leads with it."""
    table = fixed_target.defaults_table(real, "[{task}](benchmarks/results/real/REPORT.md)")
    if not table:
        return []
    return [
        "The real model (SmolLM2-135M-Instruct, pruned and recovered) from two users' default lrs, to AlgoPerf's "
        "fixed target: per case and measure, the start plus 95% of the gain that `adamw-tuned` (AdamW at the lr a "
        "sweep picks, the sweep free) made by the end of its budget. Steps / training seconds to it (every probe call "
        "on the clock), median over cases, then how many cases got there; `never`: the median case did not. Best "
        "peer: the fewest steps (and apart, seconds) among adamw-tuned, untuned Prodigy and schedule-free AdamW at "
        f"that lr; effopt / best peer: effopt's steps and seconds over its (the goal: at most {fixed_target.SHARE:g}).",
        "",
        *table,
        "",
    ]


def readme_block(
    summary: dict, mode: str, device: str, cpu: str, real: dict | None = None, real_cpu: str | None = None
) -> list[str]:
    """The lines between the README's MARKERS: the goal tally and the goals, the headline table (the real model's rows
    first, where `make real` has run), the headline plot. `summary` and `real`: full summaries or summary.json's published subset."""
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
        *scoreboard(summary, real),
        "",
        *defaults(real),
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
