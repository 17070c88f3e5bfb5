"""The real model's race (benchmarks/real.py): two tasks over one world, from two users' default lrs; what `make real`
runs on 2 seeds and in which order, and which runs it makes once and reuses (benchmarks.race.plan), as its docstring
says. No model is loaded: the tasks are only listed."""

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
