"""Speed-up to target: every task, every method, the same seeds, data and learning rate, in one run.

`pytest benchmarks/ --benchmark-json=PATH` records each run's learning curve, events and memory in `extra_info`;
`python -m benchmarks.report PATH` turns them into tables, plots and summary.json. Nothing here asserts a speed-up.
"""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.tasks import MODE, tasks

CASES = [(task, method, seed) for task in tasks() for method in task.methods for seed in task.seeds]


@pytest.mark.parametrize(
    "task,method,seed", CASES, ids=[f"{t.name}-{m}-seed{s}" for t, m, s in CASES]
)
def test_speedup(benchmark, task, method, seed):
    benchmark.group = task.name
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    result = benchmark.pedantic(task.run, args=(method, seed), rounds=1, iterations=1)
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
        peak_gpu_bytes=torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
    )
    assert math.isfinite(result["final_metric"])
    assert result["curve"][0]["step"] == 0 and len(result["curve"]) > 1
