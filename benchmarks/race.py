"""What a race is, whatever its mode: a task (`Task`: its loop, lr, cases and rows), the names of its rows (`adamw`,
the grid's `adamw-3x`, ..., `adamw-tuned`), the optimizer each row runs (`optimizer_of`), the order every run goes in
(`order`), and which runs are the same run, made once and reused (`reused`; `plan` lists a mode's runs with it, before
any is made). benchmarks.tasks defines each mode's tasks; benchmarks/test_speedup.py runs them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

BASELINE, TUNED = "adamw", "adamw-tuned"
#: Other peers: the published rule, Lookahead, schedule-free AdamW, ExPO-style fixed extrapolation.
PEERS = ("effopt-paper", "lookahead", "schedulefree", "expo")
#: Methods whose optimizer reads no probe: their runs do not depend on which probe a task hands effopt
PROBE_FREE = (BASELINE, "prodigy", "lookahead", "schedulefree")

Key = tuple[str, str, int, int]  #: a run: (task, method, instance, seed)


def grid_name(multiple: float) -> str:
    return f"{BASELINE}-{multiple:g}x"


def optimizer_of(method: str, task: Task | None = None) -> str:
    """The optimizer a method runs (reference.optimizers): the grid and tuned rows run AdamW or effopt at another lr;
    effopt-budget runs with the task's declared probe cost where it has one."""
    if method == TUNED or method.startswith(f"{BASELINE}-") and method.endswith("x"):
        return BASELINE
    if method == "effopt-budget" and task is not None and task.probe_cost is not None:
        return f"effopt-budget@{task.probe_cost:g}"
    return method.removesuffix("-tuned")


def every(instances: tuple[int, ...], seeds: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Every seed on every instance."""
    return tuple((i, s) for i in instances for s in seeds)


def diagonal(instances: tuple[int, ...], seeds: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Seed i on instance i (instances beyond the seeds' count, or seeds beyond the instances', on the last one)."""
    return tuple(
        (min(k, len(instances) - 1), seeds[min(k, len(seeds) - 1)]) for k in range(max(len(instances), len(seeds)))
    )


@dataclass
class Task:
    name: str
    regime: str  # "post-training" (a capable model, a small lr) or "from scratch" (a tuned lr)
    #: (method's optimizer, instance, seed, lr) -> the loop's result; `steps=` shortens the run (benchmarks.kernels)
    run: Callable[..., dict]
    prepare: Callable[[int], object]  # (instance) -> its world, loaded or built before any clock starts
    lr: float  # the task's learning rate: what the loop's users run
    notes: str
    cases: tuple[tuple[int, int], ...] = ((0, 0),)  # (instance, seed) pairs, in the order they run
    headline: tuple[str, ...] = (BASELINE, "effopt")  # run on every case
    sparse: tuple[str, ...] = ()  # run on the diagonal of the cases only (seed k on instance k): one seed an instance
    others: tuple[str, ...] = PEERS  # run on the first case only
    grid: tuple[float, ...] = ()  # AdamW's lr grid on each instance's first seed; with it, the tuned rows
    metric_examples: int | None = None  # the eval set's size: how noisy the metric is (yardstick.conditioned)
    tuned_from: str | None = None  # the task whose lr grid picks the tuned rows' lr (the same world), else its own
    #: the task (the same world and loop) whose runs this task reuses where they are the same run: the same
    #: probe-free optimizer at the same lr on the same case (`reused`)
    same_runs_as: str | None = None
    #: effopt-budget's declared cost of one probe call, in base steps (PROBE_COSTS); None: measured (follows the clock)
    probe_cost: float | None = None
    #: the row whose run sets each case's targets: `adamw` (the paper's measure: AdamW at the task's lr), or
    #: `adamw-tuned` (AlgoPerf's fixed target: what the best tuned AdamW reaches, benchmarks.fixed_target)
    target_from: str = BASELINE

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted({s for _, s in self.cases}))

    @property
    def instances(self) -> tuple[int, ...]:
        return tuple(sorted({i for i, _ in self.cases}))

    def first_seed(self, instance: int) -> int:
        return next(s for i, s in self.cases if i == instance)

    def methods(self, instance: int, seed: int) -> list[str]:
        """The runs of one case, in the order they run: the baseline first, the grid on the instance's first seed (the
        tuned lr is chosen from it before any tuned row runs), then the rest."""
        grid = [grid_name(m) for m in self.grid] if seed == self.first_seed(instance) else []
        rest = [m for m in self.headline if m != BASELINE]
        rest += list(self.sparse) if (instance, seed) in diagonal(self.instances, self.seeds) else []
        rest += list(self.others) if (instance, seed) == self.cases[0] else []
        return [BASELINE, *grid, *rest]


def order(tasks: list[Task]) -> list[Key]:
    """Every run of `tasks`, in the order they run: seed by seed (seed-major), every task, instance and method within a
    seed, so that a slow spell of a shared machine falls on all methods alike."""
    return [
        (task.name, method, instance, seed)
        for seed in sorted({s for t in tasks for s in t.seeds})
        for task in tasks
        for instance, s in task.cases
        if s == seed
        for method in task.methods(instance, seed)
    ]


def tuned_source(task: Task, by_name: Mapping[str, Task]) -> Task:
    """The task whose lr grid picks `task`'s tuned lr: its `tuned_from`, else itself."""
    return by_name.get(task.tuned_from, task) if task.tuned_from else task


def multiple_of(task: Task, method: str, tuned: float, source: Task) -> float:
    """A run's lr as a multiple of its task's lr: a grid row's own multiple; a tuned row's `tuned` (a multiple of the
    lr of `source`, the task whose grid picked it); 1 for the rest."""
    if method in (TUNED, "effopt-tuned"):
        return tuned * (source.lr / task.lr)
    return next((g for g in task.grid if method == grid_name(g)), 1.0)


def reused(task: Task, method: str, instance: int, seed: int, multiple: float, lr: float | None, made) -> Key | None:
    """The run that `task`'s `method` on (instance, seed) at `lr` (None: lr-free) would make again, as a key of `made`
    ({Key: a run's record with its "lr", None for an lr-free one}, the runs made so far), or None: it is made.

    - A task with `same_runs_as` (the same world and loop) takes that task's run of the same probe-free optimizer at
      the same lr (or both lr-free) on the case, the one of the same name first (opd-near-costly-probe's adamw is
      opd-near's adamw; opd-smol-lr1e-06's adamw on the first seed is opd-smol's grid run at 1e-6, and its prodigy
      opd-smol's prodigy).
    - adamw-tuned on an instance's first seed is the grid run at the lr it picked (its own grid's), adamw's where 1x.
    - effopt-tuned at 1x is effopt.
    """
    if task.same_runs_as and optimizer_of(method) in PROBE_FREE:
        same = [
            key
            for key, record in made.items()
            if (key[0], key[2], key[3]) == (task.same_runs_as, instance, seed)
            and optimizer_of(key[1]) == optimizer_of(method)
            and (
                lr is None and record["lr"] is None or None not in (lr, record["lr"]) and math.isclose(record["lr"], lr)
            )
        ]
        if same:  # the same name first
            return next((key for key in same if key[1] == method), same[0])
    if method == TUNED and seed == task.first_seed(instance) and not task.tuned_from:  # the grid run at that lr
        return (task.name, BASELINE if multiple == 1 else grid_name(multiple), instance, seed)
    if method == "effopt-tuned" and multiple == 1 and (task.name, "effopt", instance, seed) in made:
        return (task.name, "effopt", instance, seed)
    return None


def plan(tasks: list[Task], tuned: float = 3.0) -> list[tuple[Key, Key | None]]:
    """Every run of `tasks` in the order they run, each with the run it reuses (None: made), were each lr grid to pick
    `tuned` times its task's lr on every instance (the pick is made during the race; it changes which grid run the
    tuned row's first seed is, not how many runs are made, except where it picks an lr another row also runs)."""
    from reference.optimizers import LR_FREE

    by_name = {t.name: t for t in tasks}
    made: dict[Key, dict] = {}
    out = []
    for key in order(tasks):
        task, method, instance, seed = by_name[key[0]], key[1], key[2], key[3]
        multiple = multiple_of(task, method, tuned, tuned_source(task, by_name))
        lr = None if optimizer_of(method) in LR_FREE else task.lr * multiple
        out.append((key, reused(task, method, instance, seed, multiple, lr, made)))
        made[key] = {"lr": lr}
    return out
