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

import json
import math
import statistics
import subprocess
import time
from pathlib import Path

import pytest
import torch

from benchmarks import pins, race, yardstick
from benchmarks.tables import lr_text
from benchmarks.tasks import BASELINE, MODE, THREADS, TUNED, grid_name, optimizer_of, tasks
from benchmarks.yardstick import tuned_multiple
from reference.optimizers import LR_FREE

torch.set_num_threads(THREADS)
KERNELS = pins.pin()  # the kernels every run computes with (recorded in each run's extra_info)
TASKS = {task.name: task for task in tasks()}
CASES = race.order(list(TASKS.values()))
RUNS: dict[tuple[str, str, int, int], dict] = {}  # (task, method, instance, seed) -> extra_info of the runs so far
STARTED = time.perf_counter()


def _source() -> dict:
    """The commit that makes these runs, and whether the working tree differed from it (the report refuses to mix
    commits, and says so where a tree was dirty)."""
    root = Path(__file__).parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "HEAD") or None,
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


SOURCE = _source()


def _multiple(task, method: str, instance: int, seed: int) -> tuple[float, tuple | None]:
    """The run's lr as a multiple of the task's lr, and the run it reuses, as a RUNS key (benchmarks.race.reused):
    adamw-tuned on the instance's first seed is its grid run; a task with `same_runs_as` reuses that task's runs of the
    probe-free methods. The tuned rows' lr is picked from the grid's runs (yardstick.tuned_multiple)."""
    source, tuned = race.tuned_source(task, TASKS), 1.0
    if method in (TUNED, "effopt-tuned"):
        first_seed = source.first_seed(instance)
        first = {
            m: RUNS.get((source.name, m, instance, first_seed))
            for m in [BASELINE] + [grid_name(g) for g in source.grid]
        }
        if any(r is None for r in first.values()):
            pytest.skip(f"{method} needs the lr grid of {source.name}'s instance {instance}: run the whole suite")
        tuned = tuned_multiple(first)
    multiple = race.multiple_of(task, method, tuned, source)
    lr = None if optimizer_of(method) in LR_FREE else task.lr * multiple
    return multiple, race.reused(task, method, instance, seed, multiple, lr, RUNS)


def _expected_lengths() -> dict:
    """Each run's length in the committed results of this mode (results/benchmark.json, the real model's
    results/real/benchmark.json; 0 for a reused run), by RUNS key."""
    results = Path(__file__).parent / "results" / ("real" if MODE == "real" else "")
    try:
        data = json.loads((results / "benchmark.json").read_text())
    except (OSError, ValueError):
        return {}
    runs = [b["extra_info"] for b in data["benchmarks"] if b["extra_info"].get("kind") == "speedup"]
    return {
        (r["task"], r["method"], r.get("instance", 0), r["seed"]): 0.0 if r.get("reused") else r["run_seconds"]
        for r in runs
    }


EXPECTED = _expected_lengths()
PLANNED = dict(race.plan(list(TASKS.values())))  #: each run's planned reuse (benchmarks.race.plan), for the time left


def _expected(key: tuple) -> float:
    """A run's expected length: the committed run's, 0 where it will be reused, else its task's median there."""
    if PLANNED.get(key) is not None:
        return 0.0
    if key in EXPECTED:
        return EXPECTED[key]
    same_task = [v for k, v in EXPECTED.items() if k[0] == key[0] and v > 0] or [v for v in EXPECTED.values() if v > 0]
    return statistics.median(same_task) if same_task else 1.0


def _line(done: int, selected: list[tuple], info: dict, reference: dict | None, whose: str = BASELINE) -> str:
    """A run's progress line: when it reaches the target of `reference` (the run of the task's `target_from` row,
    `whose`, on the case); the time left is the remaining runs' expected lengths, scaled by how this machine has kept to
    the expectation so far."""
    elapsed = time.perf_counter() - STARTED
    total = len(selected)
    finished = [k for k in selected if k in RUNS]
    pace = elapsed / max(sum(map(_expected, finished)), 1e-9)
    left = pace * sum(_expected(k) for k in selected if k not in RUNS)
    target = "target" if whose == BASELINE else f"{whose}'s target"
    reach = f"{target}: n/a"
    if reference is not None:
        goal = yardstick.target(reference["curve"], "metric", examples=info["metric_examples"])
        steps, seconds = yardstick.reach(info["curve"], "metric", goal)
        never = "never reaches the target" if whose == BASELINE else f"never reaches {target}"
        reach = never if steps is None else f"{target} at step {steps} ({seconds:.1f} s)"
    retained = yardstick.tail(info["curve"], "retained")
    kept = "" if retained is None else f", retained {retained:.3f}"
    return (
        f"[{done}/{total} {elapsed / 60:.1f} min, ~{left / 60:.0f} min left] {info['task']} instance "
        f"{info['instance']} seed {info['seed']} {info['method']} (lr {lr_text(info['lr'])}): {reach}, final "
        f"{yardstick.tail(info['curve'], 'metric'):.3f}{kept}; {info['run_seconds']:.0f} s"
    )


@pytest.mark.parametrize(
    "name,method,instance,seed", CASES, ids=[f"{t}-{m}-instance{i}-seed{s}" for t, m, i, s in CASES]
)
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
        result = dict(RUNS[reuse]["result"])
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    else:
        result = benchmark.pedantic(
            task.run, args=(optimizer_of(method, task), instance, seed, lr), rounds=1, iterations=1
        )
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
        target_from=task.target_from,  # the row whose run sets the case's targets (benchmarks.fixed_target)
        lr=None if method in LR_FREE else lr,
        lr_multiple=None if method in LR_FREE else multiple,
        reused=None if reuse is None else reuse[1] if reuse[0] == task.name else f"{reuse[0]}/{reuse[1]}",
        device=result["device"],
        device_name=torch.cuda.get_device_name() if result["device"].startswith("cuda") else "cpu",
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        kernels=KERNELS,
        threads=torch.get_num_threads(),
        initial_metric=result["initial_metric"],
        final_metric=result["final_metric"],
        curve=result["curve"],
        events=result["events"],
        seconds_split=result.get("seconds"),  # where the loop splits its training seconds (reference.smol)
        run_seconds=RUNS[reuse]["run_seconds"] if reuse else time.perf_counter() - started,
        peak_gpu_bytes=torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
        **SOURCE,
    )
    benchmark.extra_info.update(info)
    RUNS[(task.name, method, instance, seed)] = dict(info, result=result)
    # the run that sets the case's targets: the task's own, else (not yet run here) for a tuned row whose lr another
    # task's grid picks, that task's tuned run on the case (at the same lr: opd-smol-lr1e-06's is opd-smol's)
    reference = RUNS.get((task.name, task.target_from, instance, seed))
    if reference is None and task.target_from == TUNED and task.tuned_from:
        reference = RUNS.get((task.tuned_from, TUNED, instance, seed))
    selected = [
        tuple(item.callspec.params[k] for k in ("name", "method", "instance", "seed"))
        for item in request.session.items
        if item.originalname == "test_speedup"
    ]  # those selected (-k)
    request.node.user_properties.append(("progress", _line(len(RUNS), selected, info, reference, task.target_from)))
    assert math.isfinite(result["final_metric"])
    assert result["curve"][0]["step"] == 0 and len(result["curve"]) > 1
