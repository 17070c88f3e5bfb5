"""The scoreboard: a handful of goals that together say what effopt promises, each stated for the shipped default
(`effopt`, and `effopt-tuned`: the same default at the tuned lr) on a family of tasks. The README's first screen and
the top of REPORT.md show them, each met or not with its figure.

A goal gathers the checks of benchmarks.goals that test it (by task, method and what the check says): it is not met
where any check it gathers is not met, met where every one is; where nothing failed but the run lacks rows that the
full mode runs (the real model's: that `make real` runs), it is the full mode's goal (`make bench-full`), left off
this run's board and named below it. The variants' checks (effopt-noscale, effopt-guard, effopt-budget, the real
model's VARIANTS) stay in REPORT.md as rows, not goals. Every check of the default belongs to exactly one goal
(tests/test_goals.py checks it), so no check that fails can leave the board.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.fixed_target import SHARE
from benchmarks.fmt import fmt, na, times
from benchmarks.goals import (
    COSTLY,
    COSTLY_SECONDS,
    INSTANCE_OBJECTIVE,
    INSTANCE_SPEEDUP,
    KEPT_THROUGH_TRL,
    NO_HARM,
    NO_HARM_TASKS,
    PAPER_SECONDS,
    PAPER_STEPS,
    RACE_TASKS,
    REAL_RETAINED,
    REAL_SEEDS,
    SECONDS_FOLLOW,
    TRL,
    all_goals,
)
from benchmarks.real import REAL_TASKS, SMOL, SMOL_LOW
from benchmarks.tasks import TUNED

Check = tuple[str, bool | None, str]  #: (what, met: None where the run lacks its rows, measured), as goals.py writes it
DEFAULT = ("effopt", "effopt-tuned")  #: the shipped default, at the task's lr and at the tuned lr
RACE = ", ".join(RACE_TASKS)


def subject(check: str) -> tuple[str, str]:
    """(task, method) of a check: its text starts "task: method ..." (the method possibly as "method's")."""
    task, rest = check.split(": ", 1)
    return task, re.match(r"[\w-]+", rest).group(0)


@dataclass(frozen=True)
class Goal:
    text: str  #: the promise, as the README states it
    tasks: tuple[str, ...]  #: the family it is stated on
    says: tuple[str, ...]  #: a check of the family is this goal's if its text holds one of these
    #: (summary, the checks gathered) -> the measured figure, short: REPORT.md's checks hold the rest
    figure: Callable[[dict, list[Check]], str]
    method: str = "effopt"

    def gathers(self, check: str) -> bool:
        task, method = subject(check)
        return task in self.tasks and method == self.method and any(s in check for s in self.says)


def _rows(summary: dict, tasks: tuple[str, ...], method: str) -> list[tuple[str, dict, dict]]:
    """(task, the method's figures, the task's figures by method) for each task of `tasks` the run has the row on."""
    return [(t, summary[t][method], summary[t]) for t in tasks if summary.get(t, {}).get(method)]


def _lead(checks: list[Check]) -> str:
    """Each check's leading figure (its measured text up to " (") after its task."""
    return ", ".join(f"{subject(what)[0]} {measured.split(' (')[0]}" for what, _, measured in checks)


def _speedup(summary: dict, checks: list[Check]) -> str:
    f = summary["opd-near"]["effopt"]
    worst = min((v or 0 for v in f["speedup_steps_per_seed"]), default=None)
    instances = f["per_instance"].values()
    return (
        f"steps {times(f['speedup_steps'])} (worst seed {times(worst)}), seconds {times(f['speedup_seconds'])}; "
        f"per instance {', '.join(times(i['speedup_decisive']) for i in instances)}, to the objective "
        f"{', '.join(times(i['speedup_objective']) for i in instances)}"
    )


def _against(rival: str, per_instance: bool) -> Callable[[dict, list[Check]], str]:
    def figure(summary: dict, checks: list[Check]) -> str:
        rows = [(t, f, m[rival]) for t, f, m in _rows(summary, RACE_TASKS, "effopt") if m.get(rival)]
        text = "; ".join(
            f"{t} {fmt(f['steps_to_target'], 0)} vs {fmt(r['steps_to_target'], 0)} steps, retained "
            f"{na(f['retained_final'])} vs {na(r['retained_final'])}"
            for t, f, r in rows
        )
        near = summary.get("opd-near", {}).get("effopt")
        if per_instance and near:
            text += "; opd-near per instance " + ", ".join(
                times(i["speedup_steps_vs_tuned"]) for i in near["per_instance"].values()
            )
        return text

    return figure


def _at_tuned_lr(summary: dict, checks: list[Check]) -> str:
    return ", ".join(
        f"{t} {times(f['speedup_steps_vs_tuned'])}" for t, f, _ in _rows(summary, RACE_TASKS, "effopt-tuned")
    )


def _costly(summary: dict, checks: list[Check]) -> str:
    f, tuned = summary[COSTLY]["effopt"], summary[COSTLY].get(TUNED)
    worst = min((v or 0 for v in f["speedup_seconds_per_seed"]), default=None)
    than = (
        "" if not tuned else f"; {fmt(f['seconds_to_target'], 1, ' s')} vs {fmt(tuned['seconds_to_target'], 1, ' s')}"
    )
    return f"seconds {times(f['speedup_seconds'])} (worst seed {times(worst)}){than}"


def _worst_case(summary: dict, checks: list[Check]) -> str:
    keys = ("", "_seconds", "_modelled_seconds")
    return "worst case " + ", ".join(
        f"{t} {times(min((v or 0 for k in keys for v in f[f'speedup_decisive{k}_per_seed']), default=None))}"
        for t, f, _ in _rows(summary, NO_HARM_TASKS, "effopt")
    )


def _per_task(summary: dict, checks: list[Check]) -> str:
    """Each check's task and measured figure (a real goal's checks: one a task)."""
    return "; ".join(f"{subject(what)[0]}: {measured}" for what, _, measured in checks)


#: The real model's goals (benchmarks.goals.real_goals), first on the board
REAL_GOALS = (
    Goal(
        f"First on the real model, from both defaults ({SMOL} at TRL GKDConfig's 2e-5, {SMOL_LOW} at TRL "
        f"DistillationConfig's and EffOPD's 1e-6): to the fixed target (95% of adamw-tuned's gain), steps and seconds at most {SHARE:g} "
        "of the best peer's (adamw-tuned with its sweep free, untuned Prodigy, schedule-free AdamW at that lr), on "
        f"{REAL_SEEDS} seeds, retained skill within {REAL_RETAINED:g} of that peer's",
        REAL_TASKS,
        ("the best peer's",),
        _per_task,
    ),
    Goal(
        f"The paper's claim, where it was made ({SMOL_LOW}): AdamW-at-1e-6's own target in at least {PAPER_STEPS:g}x "
        f"fewer steps and {PAPER_SECONDS:g}x fewer seconds",
        (SMOL_LOW,),
        ("adamw's own target",),
        _per_task,
    ),
)

#: The board, in its order (the real model's goals come first: REAL_GOALS)
GOALS = (
    Goal(
        f"Post-training at the user's lr (opd-near): at least 3x fewer steps and 2.5x fewer seconds than AdamW at that "
        f"lr, no seed below 2x; on every instance at least {INSTANCE_SPEEDUP:g}x fewer steps and "
        f"{INSTANCE_OBJECTIVE:g}x to the objective's target",
        ("opd-near",),
        ("at least 3x fewer steps and 2.5x fewer seconds", "fewer steps than adamw on every", "objective's target on"),
        _speedup,
    ),
    Goal(
        f"No slower than a tuned lr ({RACE}): both targets no later than AdamW at the lr a sweep picks (the sweep "
        "free), retained skill no more than 0.01 below AdamW's there; on every opd-near instance too",
        RACE_TASKS,
        ("no later than adamw-tuned", "no slower than adamw-tuned on any instance"),
        _against(TUNED, per_instance=True),
    ),
    Goal(
        f"Ahead of untuned Prodigy at equal retained skill ({RACE}): both targets no later, retained skill no more "
        "than 0.01 below Prodigy's",
        RACE_TASKS,
        ("no later than prodigy",),
        _against("prodigy", per_instance=False),
    ),
    Goal(
        f"At the tuned lr too ({RACE}): effopt at adamw-tuned's lr needs at most 1/1.5 of its steps, final metric "
        "no lower",
        RACE_TASKS,
        ("adamw-tuned's steps",),
        _at_tuned_lr,
        method="effopt-tuned",
    ),
    Goal(
        f"Seconds follow steps (every task): the speed-up in seconds at least {SECONDS_FOLLOW:g} "
        "of that in steps, every probe call on the clock",
        ("opd-near", "sft", "echodistill", COSTLY, TRL, *NO_HARM_TASKS),
        ("seconds follow its steps",),
        lambda summary, checks: _lead(checks),
    ),
    Goal(
        f"With a probe that samples ({COSTLY}): at least {COSTLY_SECONDS:g}x fewer seconds than AdamW on every seed, "
        "and no slower in seconds than AdamW at the tuned lr",
        (COSTLY,),
        ("fewer seconds than adamw on every seed", "no slower in seconds than adamw-tuned"),
        _costly,
    ),
    Goal(
        f"Through TRL ({TRL}): at least {KEPT_THROUGH_TRL:g} of opd-near's speed-up on the same cases, in steps to "
        "both targets and in seconds",
        (TRL,),
        ("keeps at least",),
        lambda summary, checks: "kept " + ", ".join(measured.split(" (")[0] for _, _, measured in checks),
    ),
    Goal(
        f"Through TRL ({TRL}): retained skill no more than 0.01 below AdamW's at the tuned lr",
        (TRL,),
        ("final retained skill",),
        lambda summary, checks: "; ".join(measured for _, _, measured in checks),
    ),
    Goal(
        f"No harm elsewhere ({', '.join(NO_HARM_TASKS)}): every case at least {NO_HARM:g}x of AdamW's speed, in steps, "
        "in seconds and in modelled seconds",
        NO_HARM_TASKS,
        ("does no harm",),
        _worst_case,
    ),
)


def board(summary: dict) -> tuple[list[Check], list[str]]:
    """(the goals this run checked, as (goal, met, measured), in the board's order; the goals that are the full
    mode's, each with the rows this run lacks)."""
    checks = all_goals(summary)
    checked, full = [], []
    for goal in REAL_GOALS + GOALS:
        gathered = [c for c in checks if goal.gathers(c[0])]
        ran = [c for c in gathered if c[1] is not None]
        if not gathered:
            continue  # no mode runs it here: no goal
        if len(ran) < len(gathered) and all(ok for _, ok, _ in ran):
            missing = sorted({m.removeprefix("not run: ") for _, ok, m in gathered if ok is None})
            full.append(f"{goal.text}: {'; '.join(missing)}")
            continue
        checked.append((goal.text, all(ok for _, ok, _ in ran), goal.figure(summary, ran)))
    return checked, full


def tally(goals: list[Check]) -> str:
    """How many of the board's goals are met and not met: "N met, M not met"."""
    met = sum(bool(ok) for _, ok, _ in goals)
    return f"{met} met, {len(goals) - met} not met"


def table(rows: list[Check], head: str = "goal") -> list[str]:
    """Goals (or checks) as a Markdown table: met `yes`, `NO` or `not run`, and the measured figure."""
    return [
        f"| {head} | met | measured |",
        "|---|---|---|",
        *[
            f"| {what} | {'not run' if ok is None else 'yes' if ok else 'NO'} | {measured} |"
            for what, ok, measured in rows
        ],
    ]
