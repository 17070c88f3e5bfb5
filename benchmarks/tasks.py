"""The benchmark's tasks and methods, per mode. Each task runs a reference loop; nothing here re-implements one.

A task's `run(method, seed, lr)` returns the loop's result dict: `curve` (step, train_seconds, metric, and where the
task has them objective and retained), `initial_metric`, `final_metric`, `events`, `device`. The metric and `retained`
are higher-is-better, the objective lower-is-better. `prepare()` builds the task's cached data and models, untimed.

The race, per post-training task: the bare optimizer at the task's lr (`adamw`), AdamW over an lr grid on seed 0
(`adamw-3x`, ... : multiples of the task's lr), `adamw-tuned` (the grid point a user would pick, see
benchmarks.report.tuned_multiple, run on every seed), the lr-free `prodigy`, effopt's default at the task's lr
(`effopt`) and at the tuned lr (`effopt-tuned`); then the other peers and ablations, on seed 0 only.

Modes: "quick" (the default; every task, small sizes, the headline rows on three seeds, about 15 minutes on two CPU
cores from a warm cache), "full" (the whole grid and every row on three seeds, larger budgets; sized for a GPU, and
with the held-out tasks), "heldout" (only the held-out tasks, at the quick sizes: other learning rates and another
loss than the benchmark's, which no default was chosen on) and "smoke" (the harness itself, in seconds).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Callable

MODE = os.environ.get("EFFOPT_BENCH_MODE", "quick")
if MODE not in ("quick", "full", "smoke", "heldout"):
    raise ValueError(f"EFFOPT_BENCH_MODE: expected 'quick', 'full', 'smoke' or 'heldout', got {MODE!r}")
_SEEDS = os.environ.get("EFFOPT_BENCH_SEEDS", "3")
if not _SEEDS.isdigit() or int(_SEEDS) < 1:
    raise ValueError(f"EFFOPT_BENCH_SEEDS: expected a positive int (the seeds of every quick and full task), got "
                     f"{_SEEDS!r}")
SEEDS = tuple(range(int(_SEEDS)))  #: seeds 0, 1, ... of every task in the quick and full modes (default 3)

BASELINE, TUNED = "adamw", "adamw-tuned"
#: What a user would pick instead of the baseline (the race's headline, on every seed), and effopt's rows: the default
#: at the task's lr and at the tuned lr, the default without its persistent step size (effopt.StepScale), and the
#: default with a guard on the retained skill (effopt.Guard).
HEADLINE = (BASELINE, TUNED, "prodigy", "effopt", "effopt-tuned", "effopt-noscale", "effopt-guard")
#: Other peers: the published rule, Lookahead, schedule-free AdamW, ExPO-style fixed extrapolation.
PEERS = ("effopt-paper", "lookahead", "schedulefree", "expo")
# Rows that say which change bought what: the published rule, then its probe swapped for the smooth loss, then the
# search swapped for the quadratic line search, then the schedule swapped for Backoff (effopt-noscale), then effopt
# adds the step scale; and a denoised direction.
ABLATIONS = ("effopt-paper-loss", "effopt-quadratic", "effopt-backoff5", "effopt-lowrank")
GRID = (3, 10, 30)  #: AdamW's lr grid, as multiples of the task's lr (1x is `adamw` itself)


def grid_name(multiple: float) -> str:
    return f"{BASELINE}-{multiple:g}x"


def optimizer_of(method: str) -> str:
    """The optimizer a method runs (reference.optimizers): the grid and tuned rows run AdamW or effopt at another lr."""
    if method == TUNED or method.startswith(f"{BASELINE}-") and method.endswith("x"):
        return BASELINE
    return method.removesuffix("-tuned")


@dataclass
class Task:
    name: str
    regime: str  # "post-training" (a capable model, a small lr) or "from scratch" (a tuned lr)
    run: Callable[[str, int, float], dict]
    prepare: Callable[[], object]
    lr: float  # the task's learning rate: what the loop's users run
    notes: str
    seeds: tuple[int, ...] = (0,)
    headline: tuple[str, ...] = (BASELINE, "effopt")  # run on every seed
    others: tuple[str, ...] = PEERS  # run on the first seed only
    grid: tuple[float, ...] = ()  # AdamW's lr grid on the first seed; with it, adamw-tuned and effopt-tuned

    def methods(self, seed: int) -> list[str]:
        """The runs of one seed, in the order they run: the baseline first, the grid on the first seed (the tuned lr
        is chosen from it before any tuned row runs), then the rest."""
        first = seed == self.seeds[0]
        grid = [grid_name(m) for m in self.grid] if first else []
        rest = [m for m in self.headline if m != BASELINE] + (list(self.others) if first else [])
        return [BASELINE, *grid, *rest]


def _classic(steps: int):
    def run(method: str, seed: int, lr: float) -> dict:
        from reference.classic import ClassicConfig, train

        return train(ClassicConfig(optimizer=method, steps=steps, seed=seed, lr=lr))

    return run


@functools.lru_cache(maxsize=None)
def _opd_task(regime: str, size: str):
    from reference import opd

    return opd.prepare(opd.OPDConfig(size=size, regime=regime), progress=False)


def _opd(regime: str, size: str, steps: int, loss: str):
    def run(method: str, seed: int, lr: float) -> dict:
        from reference import opd

        cfg = opd.OPDConfig(size=size, regime=regime, optimizer=method, lr=lr, steps=steps, seed=seed, loss=loss)
        return opd.train(cfg, task=_opd_task(regime, size), progress=False)

    return run


def _sft(size: str, steps: int):
    def run(method: str, seed: int, lr: float) -> dict:
        from reference import sft

        cfg = sft.SFTConfig(size=size, optimizer=method, lr=lr, steps=steps, seed=seed)
        return sft.train(cfg, task=_opd_task("near-teacher", size), progress=False)

    return run


@functools.lru_cache(maxsize=None)
def _echo_task(size: str):
    from reference import echodistill

    return echodistill.prepare(echodistill.EchoConfig(size=size))


def _echo(size: str, steps: int, eval_every: int):
    def run(method: str, seed: int, lr: float) -> dict:
        from reference import echodistill

        cfg = echodistill.EchoConfig(size=size, optimizer=method, steps=steps, seed=seed, metric="noisy", lr=lr,
                                     eval_every=eval_every, final_all_snrs=False)
        return echodistill.train(cfg, task=_echo_task(size), progress=False)

    return run


def tasks(mode: str = MODE) -> list[Task]:
    if mode == "smoke":
        return [Task("classic", "from scratch", _classic(40), lambda: None, 3e-3, "MLP from scratch, 40 steps",
                     seeds=(0, 1), others=(), headline=(BASELINE, TUNED, "effopt", "effopt-tuned"), grid=(3,))]
    full = mode == "full"
    seeds = SEEDS
    size = "gpu" if full else "quick"
    steps = 600 if full else 300
    near = "capable student (about 60% exact match) that also knows a second skill (reversal, about 99%), small lr"
    race = dict(seeds=seeds, headline=HEADLINE, grid=GRID)
    no_harm = dict(seeds=seeds, headline=(BASELINE, "effopt", "effopt-noscale"))  # where extrapolation may not pay
    others = PEERS + ABLATIONS
    others_short = PEERS if full else ("effopt-paper",)  # quick: Lookahead, schedule-free and ExPO on opd-near only
    near_task = functools.partial(_opd_task, "near-teacher", size)
    listed = [
        Task("opd-near", "post-training", _opd("near-teacher", size, steps, "full"), near_task, 1e-5,
             f"OPD, {near} 1e-5, full-vocabulary reverse KL, {steps} steps", others=others, **race),
        Task("sft", "post-training", _sft(size, steps), near_task, 3e-6,
             f"supervised fine-tuning of the OPD task's {near} 3e-6, {steps} steps", others=others_short, **race),
        Task("echodistill", "post-training", _echo(size, 200 if full else 150, 15), functools.partial(_echo_task, size),
             1e-3, "EchoDistill (full method) of the clean-trained audio LM on noisy audio; metric: Noisy (agreement "
             "of the noisy prediction with the clean teacher's answer) at -10 dB; retained: accuracy on clean audio",
             others=others_short, **race),
        # Do no harm: where extrapolation is not expected to pay, on every seed.
        Task("opd-grpo", "RL (post-training)", _opd("near-teacher", size, steps, "grpo"), near_task, 1e-5,
             f"RL on the OPD task's {near} 1e-5: exact-match reward, GRPO advantages over 8 samples, {steps} steps",
             others=(), **no_harm),
        Task("opd-far", "far from the teacher, tuned lr", _opd("far", size, steps, "full"),
             functools.partial(_opd_task, "far", size), 5e-4,
             f"OPD, barely trained student (about 5%), AdamW's best lr 5e-4, full-vocabulary reverse KL, {steps} steps",
             others=("prodigy",) + (PEERS if full else ()), **no_harm),
        Task("classic", "from scratch", _classic(1500 if full else 600), lambda: None, 3e-3,
             "MLP on a random teacher's labels, from scratch, AdamW lr 3e-3 (tuned)",
             others=("prodigy",) + (PEERS if full else ()), **no_harm),
    ]
    held_out = []  # not in the quick mode: other learning rates, and the sampled-token loss of the EffOPD code
    if mode == "heldout":  # the defaults against AdamW, and nothing else
        no_harm = dict(no_harm, others=())
    if full or mode == "heldout":
        for lr in (3e-6, 3e-5):
            held_out.append(Task(f"opd-near-lr{lr:g}", "post-training", _opd("near-teacher", size, steps, "full"),
                                 near_task, lr, f"OPD, {near} {lr:g}, full-vocabulary reverse KL", **no_harm))
        for lr in (2e-4, 1e-3):
            held_out.append(Task(f"opd-far-lr{lr:g}", "far from the teacher", _opd("far", size, steps, "full"),
                                 functools.partial(_opd_task, "far", size), lr,
                                 f"OPD, barely trained student, lr {lr:g}", **no_harm))
        held_out.append(Task("opd-near-sampled", "post-training", _opd("near-teacher", size, steps, "sampled"),
                             near_task, 1e-5, f"OPD, {near} 1e-5, sampled-token reverse KL (EffOPD's form)",
                             **dict(no_harm, others=PEERS + ABLATIONS) if full else no_harm))
    return held_out if mode == "heldout" else listed + held_out
