"""The benchmark's tasks and methods, per mode. Each task runs a reference loop; nothing here re-implements one.

A task's `run(method, seed)` returns the loop's result dict: `curve` (step, train_seconds, metric, ...),
`initial_metric`, `final_metric`, `events`, `device`. The metric is higher-is-better.

Modes: "quick" (the default; every task, small sizes, one seed, under 10 minutes on two CPU cores from a warm cache)
and "full" (larger budgets, three seeds, several learning rates for OPD; sized for a GPU).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

MODE = os.environ.get("EFFOPT_BENCH_MODE", "quick")
if MODE not in ("quick", "full", "smoke"):
    raise ValueError(f"EFFOPT_BENCH_MODE: expected 'quick', 'full' or 'smoke', got {MODE!r}")

PEERS = ("adamw", "effopt", "effopt-paper", "lookahead", "schedulefree", "expo")


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


def tasks(mode: str = MODE) -> list[Task]:
    seeds = (0, 1, 2) if mode == "full" else (0,)
    if mode == "smoke":
        return [Task("classic", "from scratch", _classic(40), methods=("adamw", "effopt"))]
    return [
        Task("classic", "from scratch", _classic(600 if mode == "quick" else 1500), seeds=seeds,
             notes="MLP on a random teacher's labels, from scratch, AdamW lr 3e-3 (tuned)"),
    ]
