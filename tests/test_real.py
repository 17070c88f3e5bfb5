"""The real model's race (benchmarks/real.py): two tasks over one world, from two users' default lrs; what `make real`
runs on 2 seeds and in which order, and which runs it makes once and reuses (benchmarks.race.plan), as its docstring
says. No model is loaded: the tasks are only listed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import race, real
from benchmarks.race import TUNED


def label(key, reuse):
    task, method, _, seed = key
    return (seed, task, method, None if reuse is None else f"{reuse[0]}/{reuse[1]}")


def test_make_real_runs_what_its_docstring_says_in_order():
    tasks = real.real_tasks((0, 1), size="cpu")
    smol, low = tasks
    assert (smol.name, low.name) == real.REAL_TASKS and (smol.lr, low.lr) == (2e-5, 1e-6)
    assert smol.target_from == low.target_from == TUNED  # AlgoPerf's fixed target, in both
    assert low.tuned_from == low.same_runs_as == real.SMOL and not low.grid and smol.grid == real.GRID
    assert "GKDConfig" in smol.notes and "DistillationConfig" in low.notes and "EffOPD's OPD lr" in low.notes
    assert [smol.lr * g for g in smol.grid] == pytest.approx([1e-6, 1e-5, 6e-5, 2e-4])
    S, L = real.SMOL, real.SMOL_LOW
    rows = ("adamw-tuned", "prodigy", "schedulefree", "effopt")
    grid = ("adamw-0.05x", "adamw-0.5x", "adamw-3x", "adamw-10x")
    expected = [(0, S, m, None) for m in ("adamw", *grid)]
    expected += [(0, S, TUNED, f"{S}/adamw-3x")] + [(0, S, m, None) for m in rows[1:]]  # the grid picks 3x here
    expected += [(0, L, "adamw", f"{S}/adamw-0.05x"), (0, L, TUNED, f"{S}/{TUNED}"), (0, L, "prodigy", f"{S}/prodigy")]
    expected += [(0, L, "schedulefree", None), (0, L, "effopt", None)]
    expected += [(1, S, m, None) for m in ("adamw", *rows)]
    expected += [(1, L, "adamw", None), (1, L, TUNED, f"{S}/{TUNED}"), (1, L, "prodigy", f"{S}/prodigy")]
    expected += [(1, L, "schedulefree", None), (1, L, "effopt", None)]
    planned = race.plan(tasks, tuned=3)
    assert [label(*p) for p in planned] == expected
    made = [key for key, reuse in planned if reuse is None]
    assert (len(planned), len(made)) == (24, 18)
    doc = " ".join(real.__doc__.split())
    assert "24 rows: 18 runs made, 6 reused" in doc and "about 135 minutes, within the issue's 150" in doc
    assert f"{18 * 7.5:g} minutes" in doc.replace("about ", "") and "17 made" in doc
    # were the grid to pick 0.05x, seed 1's adamw at 1e-6 would be opd-smol's adamw-tuned run at that lr
    assert sum(reuse is None for _, reuse in race.plan(tasks, tuned=0.05)) == 17
    assert [t.notes.split("; ")[0].split(", ")[-1] for t in real.real_tasks((0,), size="gpu")] == ["200 steps"] * 2


@pytest.mark.parametrize("tuned", [0.05, 0.5, 1, 3, 10])
def test_every_reused_run_is_one_made_run_at_the_same_optimizer_and_lr(tuned):
    """Whatever the grid picks, each reused row stands for one run made earlier with the same optimizer and lr on the
    same case (the lr-free prodigy: any lr), and no two runs made are the same run but where the grid picks 1x."""
    from reference.optimizers import LR_FREE

    tasks = real.real_tasks((0, 1), size="cpu")
    by_name = {t.name: t for t in tasks}
    planned = race.plan(tasks, tuned=tuned)
    reuses = dict(planned)

    def own(key):  # (optimizer, lr, instance, seed) of a row as its task asks for it
        task, method, instance, seed = by_name[key[0]], key[1], key[2], key[3]
        multiple = race.multiple_of(task, method, tuned, race.tuned_source(task, by_name))
        optimizer = race.optimizer_of(method)
        return optimizer, None if optimizer in LR_FREE else round(task.lr * multiple, 12), instance, seed

    def run(key):  # the same of the run made that the row is, following its reuses
        while reuses[key] is not None:
            assert planned.index((reuses[key], reuses[reuses[key]])) < planned.index((key, reuses[key]))  # earlier
            key = reuses[key]
        return own(key)

    made = [own(key) for key, reuse in planned if reuse is None]
    twice = {run for run in made if made.count(run) > 1}
    # as in every mode, adamw-tuned is its own run after an instance's first seed: at 1x, seed 1's is adamw's again
    assert twice == ({("adamw", 2e-5, 0, 1)} if tuned == 1 else set())
    assert all(own(key) == run(key) for key, _ in planned)
    prodigy = {run(key) for key, _ in planned if key[1] == "prodigy"}
    tuned_runs = {run(key) for key, _ in planned if key[1] == TUNED}
    assert len(prodigy) == len(tuned_runs) == 2  # one a seed, in both tasks


def test_make_reals_harness_runs_the_plan_and_reports_both_defaults(tmp_path):
    """`make real`'s harness end to end (benchmarks/test_speedup.py in the real mode, then the report) with a stand-in
    for the loop (tests/stand_in_smol.py: made-up curves, nothing loaded or trained): the runs go in the planned order,
    a reused row is marked and is the same run, and the report shows both defaults to the fixed target."""
    root = Path(__file__).resolve().parent.parent
    path = os.pathsep.join([str(root / "tests"), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, EFFOPT_BENCH_MODE="real", EFFOPT_BENCH_SEEDS="2", PYTHONPATH=path)
    raw, out = tmp_path / "bench.json", tmp_path / "real"
    command = ["benchmarks/test_speedup.py", "-q", "-p", "no:cacheprovider", "-p", "stand_in_smol", "--benchmark-quiet"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *command, f"--benchmark-json={raw}"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    infos = [b["extra_info"] for b in json.loads(raw.read_text())["benchmarks"]]
    planned = race.plan(real.real_tasks((0, 1), size="cpu"), tuned=3)
    picked = infos[5]["lr_multiple"]  # opd-smol's adamw-tuned on seed 0: the grid's pick on the made-up curves
    assert picked == 3 and [i["method"] for i in infos[1:5]] == ["adamw-0.05x", "adamw-0.5x", "adamw-3x", "adamw-10x"]
    reused = [
        None if i["reused"] is None else i["reused"] if "/" in i["reused"] else f"{i['task']}/{i['reused']}"
        for i in infos
    ]
    assert [label(*p) for p in planned] == [(i["seed"], i["task"], i["method"], r) for i, r in zip(infos, reused)]
    by = {(i["task"], i["method"], i["seed"]): i for i in infos}
    low = by[(real.SMOL_LOW, "adamw", 0)]
    assert low["lr"] == pytest.approx(1e-6) and low["curve"] == by[(real.SMOL, "adamw-0.05x", 0)]["curve"]
    for seed in (0, 1):
        tuned = by[(real.SMOL_LOW, TUNED, seed)]
        assert tuned["lr"] == pytest.approx(6e-5) and tuned["curve"] == by[(real.SMOL, TUNED, seed)]["curve"]
        assert by[(real.SMOL_LOW, "schedulefree", seed)]["lr"] == pytest.approx(1e-6)
    assert {i["target_from"] for i in infos} == {TUNED}
    assert "adamw-tuned's target at step" in run.stdout
    subprocess.run(
        [sys.executable, "-m", "benchmarks.report", str(raw), "--out", str(out), "--no-readme"],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == set(real.REAL_TASKS)
    assert set(summary[real.SMOL_LOW]) == {"adamw", TUNED, "prodigy", "schedulefree", "effopt"}
    report = (out / "REPORT.md").read_text()
    assert "| 1e-06 (opd-smol-lr1e-06) | metric |" in report and "| 2e-05 (opd-smol) | objective |" in report
    assert "Time: its 24 runs took" in report
