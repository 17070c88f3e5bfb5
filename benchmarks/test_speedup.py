"""Speed-up to target: every task, every method, the same seeds, data and learning rate, in one run.

`pytest benchmarks/ --benchmark-json=PATH` records each run's learning curve, events and memory in `extra_info`;
`python -m benchmarks.report PATH` turns them into tables, plots and summary.json. Nothing here asserts a speed-up.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import pytest
import torch

from benchmarks.foresight import early_figures, recording
from benchmarks.report import BASELINE
from benchmarks.tasks import MODE, tasks

CASES = [(task, method, seed) for task in tasks() for method in task.methods for seed in task.seeds]


@pytest.mark.parametrize(
    "task,method,seed", CASES, ids=[f"{t.name}-{m}-seed{s}" for t, m, s in CASES]
)
def test_speedup(benchmark, task, method, seed):
    benchmark.group = task.name
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    # The bare run also records its foresight: how its update after 10% of the steps lines up with its final one
    # (a CPU copy of the weights every 5 steps up to step 200; the loop's own optimizer is the last to start
    # stepping, after any teacher that a cold cache trains first).
    with recording(keep=lambda step: step % 5 == 0 and step <= 200) if method == BASELINE else nullcontext() as runs:
        result = benchmark.pedantic(task.run, args=(method, seed), rounds=1, iterations=1)
    foresight = early_figures(runs[-1]) if method == BASELINE else None
    benchmark.extra_info.update(
        kind="speedup",
        mode=MODE,
        task=task.name,
        regime=task.regime,
        notes=task.notes,
        method=method,
        seed=seed,
        device=result["device"],
        device_name=torch.cuda.get_device_name() if result["device"].startswith("cuda") else "cpu",
        initial_metric=result["initial_metric"],
        final_metric=result["final_metric"],
        curve=result["curve"],
        events=result["events"],
        foresight=foresight,
        peak_gpu_bytes=torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
    )
    assert math.isfinite(result["final_metric"])
    assert result["curve"][0]["step"] == 0 and len(result["curve"]) > 1
