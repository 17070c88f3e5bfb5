"""The benchmark's tasks and methods, per mode. Each task runs a reference loop; nothing here re-implements one.

A task's `run(method, seed)` returns the loop's result dict: `curve` (step, train_seconds, metric, ...),
`initial_metric`, `final_metric`, `events`, `device`. The metric is higher-is-better.

Modes: "quick" (the default; every task, small sizes, one seed, under 10 minutes on two CPU cores from a warm cache)
and "full" (larger budgets, three seeds, several learning rates for OPD; sized for a GPU).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Callable

MODE = os.environ.get("EFFOPT_BENCH_MODE", "quick")
if MODE not in ("quick", "full", "smoke"):
    raise ValueError(f"EFFOPT_BENCH_MODE: expected 'quick', 'full' or 'smoke', got {MODE!r}")

PEERS = ("adamw", "effopt", "effopt-paper", "lookahead", "schedulefree", "expo")
# Rows that say which change bought what: the published rule, then its probe swapped for the smooth loss, then the
# search swapped for the quadratic line search, then (effopt) the schedule swapped for Backoff; and a denoised direction.
ABLATIONS = ("effopt-paper-loss", "effopt-quadratic", "effopt-backoff5", "effopt-lowrank")


@dataclass
class Task:
    name: str
    regime: str  # "post-training" (a capable model, a small lr) or "from scratch" (a tuned lr)
    run: Callable[[str, int], dict]
    methods: tuple[str, ...] = PEERS
    seeds: tuple[int, ...] = (0,)
    notes: str = ""
    extra: dict = field(default_factory=dict)


def _classic(steps: int) -> Callable[[str, int], dict]:
    def run(method: str, seed: int) -> dict:
        from reference.classic import ClassicConfig, train

        return train(ClassicConfig(optimizer=method, steps=steps, seed=seed))

    return run


@functools.lru_cache(maxsize=None)
def _opd_task(regime: str, size: str):
    from reference import opd

    return opd.prepare(opd.OPDConfig(size=size, regime=regime), progress=False)


def _opd(regime: str, size: str, steps: int, lr: float | None, loss: str) -> Callable[[str, int], dict]:
    def run(method: str, seed: int) -> dict:
        from reference import opd

        cfg = opd.OPDConfig(size=size, regime=regime, optimizer=method, lr=lr, steps=steps, seed=seed, loss=loss)
        return opd.train(cfg, task=_opd_task(regime, size), progress=False)

    return run


def _sft(size: str, steps: int, lr: float) -> Callable[[str, int], dict]:
    def run(method: str, seed: int) -> dict:
        from reference import sft

        cfg = sft.SFTConfig(size=size, optimizer=method, lr=lr, steps=steps, seed=seed)
        return sft.train(cfg, task=_opd_task("near-teacher", size), progress=False)

    return run


@functools.lru_cache(maxsize=None)
def _echo_task(size: str):
    from reference import echodistill

    return echodistill.prepare(echodistill.EchoConfig(size=size))


def _echo(size: str, steps: int, eval_every: int) -> Callable[[str, int], dict]:
    def run(method: str, seed: int) -> dict:
        from reference import echodistill

        cfg = echodistill.EchoConfig(size=size, optimizer=method, steps=steps, seed=seed, metric="noisy",
                                     eval_every=eval_every, final_all_snrs=False)
        return echodistill.train(cfg, task=_echo_task(size), progress=False)

    return run


def tasks(mode: str = MODE) -> list[Task]:
    if mode == "smoke":
        return [Task("classic", "from scratch", _classic(40), methods=("adamw", "effopt"))]
    full = mode == "full"
    seeds = (0, 1, 2) if full else (0,)
    size = "gpu" if full else "quick"
    steps = 600 if full else 300
    near = "capable student (about 60% exact match), small lr"
    listed = [
        Task("opd-near", "post-training", _opd("near-teacher", size, steps, 1e-5, "full"), PEERS + ABLATIONS, seeds,
             f"OPD, {near} 1e-5, full-vocabulary reverse KL, {steps} steps"),
        Task("opd-far", "far from the teacher, tuned lr", _opd("far", size, steps, 5e-4, "full"),
             PEERS + ("effopt-backoff5",), seeds,
             f"OPD, barely trained student (about 5%), AdamW's best lr 5e-4, full-vocabulary reverse KL, {steps} steps"),
        Task("sft", "post-training", _sft(size, steps, 3e-6), PEERS, seeds,
             f"supervised fine-tuning of the OPD task's {near} 3e-6, {steps} steps"),
        Task("echodistill", "post-training", _echo(size, 200 if full else 150, 15), PEERS, seeds,
             "EchoDistill (full method) of the clean-trained audio LM on noisy audio; metric: Noisy (agreement of the "
             "noisy prediction with the clean teacher's answer) at -10 dB"),
        Task("classic", "from scratch", _classic(1500 if full else 600), PEERS, seeds,
             "MLP on a random teacher's labels, from scratch, AdamW lr 3e-3 (tuned)"),
    ]
    if full:  # where extrapolation helps across learning rates, and with the sampled-token loss of the EffOPD code
        for lr in (3e-6, 3e-5):
            listed.append(Task(f"opd-near-lr{lr:g}", "post-training", _opd("near-teacher", size, steps, lr, "full"),
                               PEERS, seeds, f"OPD, {near} {lr:g}, full-vocabulary reverse KL"))
        for lr in (2e-4, 1e-3):
            listed.append(Task(f"opd-far-lr{lr:g}", "far from the teacher", _opd("far", size, steps, lr, "full"),
                               PEERS, seeds, f"OPD, barely trained student, lr {lr:g}"))
        listed.append(Task("opd-near-sampled", "post-training", _opd("near-teacher", size, steps, 1e-5, "sampled"),
                           PEERS + ABLATIONS, seeds, f"OPD, {near} 1e-5, sampled-token reverse KL (EffOPD's form)"))
    return listed
