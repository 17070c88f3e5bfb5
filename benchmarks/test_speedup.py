"""The race: every task, every method, the same seeds and data, in one run.

`pytest benchmarks/ --benchmark-json=PATH` records each run's learning curve, events and memory in `extra_info` and
prints one line per run as it goes; `python -m benchmarks.report PATH` turns them into tables, plots and summary.json.
Nothing here asserts a speed-up.

Runs go seed by seed (seed-major), every task, instance and method within a seed, so that a slow spell of a shared
machine falls on all methods alike. Within a task and case (instance, seed) the baseline runs first (it fixes the
target), then the lr grid (on the instance's first seed), from which `adamw-tuned`'s lr for that instance is chosen
before any tuned row runs. A task's data and models are loaded (or built) before its first run's clock starts, and no
instrumentation runs inside any run.
"""

from __future__ import annotations

import math
import time

import pytest
import torch

from benchmarks import yardstick
from benchmarks.report import lr_text
from benchmarks.yardstick import tuned_multiple
from benchmarks.tasks import BASELINE, MODE, THREADS, TUNED, grid_name, optimizer_of, tasks
from reference.optimizers import LR_FREE

torch.set_num_threads(THREADS)
TASKS = {task.name: task for task in tasks()}
CASES = [(task.name, method, instance, seed) for seed in sorted({s for t in TASKS.values() for s in t.seeds})
         for task in TASKS.values() for instance, s in task.cases if s == seed
         for method in task.methods(instance, seed)]
RUNS: dict[tuple[str, str, int, int], dict] = {}  # (task, method, instance, seed) -> extra_info of the runs so far
STARTED = time.perf_counter()


def _multiple(task, method: str, instance: int, seed: int) -> tuple[float, str | None]:
    """The run's lr as a multiple of the task's lr, and the run it reuses (adamw-tuned on the instance's first seed
    is its grid run)."""
    if method in (TUNED, "effopt-tuned"):
        first_seed = task.first_seed(instance)
        first = {m: RUNS.get((task.name, m, instance, first_seed))
                 for m in [BASELINE] + [grid_name(g) for g in task.grid]}
        if any(r is None for r in first.values()):
            pytest.skip(f"{method} needs the lr grid of {task.name}'s instance {instance}: run the whole suite")
        multiple = tuned_multiple(first)
        if method == TUNED:  # on the instance's first seed, the grid run already made at that lr
            return multiple, (BASELINE if multiple == 1 else grid_name(multiple)) if seed == first_seed else None
        return multiple, ("effopt" if multiple == 1 and (task.name, "effopt", instance, seed) in RUNS else None)
    for g in task.grid:
        if method == grid_name(g):
            return g, None
    return 1.0, None


def _line(done: int, total: int, info: dict, baseline: dict | None) -> str:
    elapsed = time.perf_counter() - STARTED
    left = elapsed / done * (total - done)
    reach = "target: n/a"
    if baseline is not None:
        goal = yardstick.target(baseline["curve"], "metric", examples=info["metric_examples"])
        steps, seconds = yardstick.reach(info["curve"], "metric", goal)
        reach = "never reaches the target" if steps is None else f"target at step {steps} ({seconds:.1f} s)"
    retained = yardstick.tail(info["curve"], "retained")
    kept = "" if retained is None else f", retained {retained:.3f}"
    return (f"[{done}/{total} {elapsed / 60:.1f} min, ~{left / 60:.0f} min left] {info['task']} instance "
            f"{info['instance']} seed {info['seed']} {info['method']} (lr {lr_text(info['lr'])}): {reach}, final "
            f"{yardstick.tail(info['curve'], 'metric'):.3f}{kept}; {info['run_seconds']:.0f} s")


@pytest.mark.parametrize("name,method,instance,seed", CASES,
                         ids=[f"{t}-{m}-instance{i}-seed{s}" for t, m, i, s in CASES])
def test_speedup(benchmark, request, name, method, instance, seed):
    task = TASKS[name]
    benchmark.group = name
    multiple, reuse = _multiple(task, method, instance, seed)
    lr = task.lr * multiple  # an lr-free optimizer is handed it and ignores it
    task.prepare(instance)  # data and models, loaded (shipped or cached) or built before any clock starts
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    if reuse is not None:  # a run already made with the same optimizer and lr: the same run, not a rerun
        result = dict(RUNS[(task.name, reuse, instance, seed)]["result"])
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    else:
        result = benchmark.pedantic(task.run, args=(optimizer_of(method), instance, seed, lr), rounds=1,
                                    iterations=1)
    info = dict(
        kind="speedup",
        mode=MODE,
        task=task.name,
        regime=task.regime,
        notes=task.notes,
        method=method,
        instance=instance,
        seed=seed,
        metric_examples=result.get("metric_examples", task.metric_examples),  # a loop may count what it measured
        lr=None if method in LR_FREE else lr,
        lr_multiple=None if method in LR_FREE else multiple,
        reused=reuse,
        device=result["device"],
        device_name=torch.cuda.get_device_name() if result["device"].startswith("cuda") else "cpu",
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        threads=torch.get_num_threads(),
        initial_metric=result["initial_metric"],
        final_metric=result["final_metric"],
        curve=result["curve"],
        events=result["events"],
        seconds_split=result.get("seconds"),  # where the loop splits its training seconds (reference.smol)
        run_seconds=(RUNS[(task.name, reuse, instance, seed)]["run_seconds"] if reuse
                     else time.perf_counter() - started),
        peak_gpu_bytes=torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
    )
    benchmark.extra_info.update(info)
    RUNS[(task.name, method, instance, seed)] = dict(info, result=result)
    baseline = RUNS.get((task.name, BASELINE, instance, seed))
    total = sum(item.originalname == "test_speedup" for item in request.session.items)  # those selected (-k)
    request.node.user_properties.append(("progress", _line(len(RUNS), total, info, baseline)))
    assert math.isfinite(result["final_metric"])
    assert result["curve"][0]["step"] == 0 and len(result["curve"]) > 1
