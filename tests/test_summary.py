"""The report's numbers and tables on hand-made runs: speed-ups, k/n and per-case fields, instances and the
objective where the metric is noise, AlgoPerf's two rulesets and the commit that made the rows (benchmarks.summary,
benchmarks.tables, benchmarks.report)."""

import pytest
from handmade import run_info

from benchmarks.summary import summarise
from benchmarks.tables import race_table


def test_tables_show_lr_free_rows_and_undefined_speedups():
    base = [0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9]
    runs = [
        run_info("adamw", 0, base),
        run_info("adamw", 1, [0.5] * 7),
        run_info("prodigy", 0, base),
        run_info("prodigy", 1, base),
    ]
    for run in runs[2:]:
        run["lr"] = run["lr_multiple"] = None
    table = race_table(summarise(runs)["t"])
    row = next(line for line in table.splitlines() if line.startswith("| prodigy"))
    # seed 1's baseline made no gain: no target there, so that case leaves the medians, and the table says so
    assert "| free |" in row and "60 1/1 (1/2 with a target)" in row


def test_summary_speedups_k_of_n_and_per_seed_fields():
    base = [0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9]  # target 0.5 + 0.95 * 0.4 = 0.88; smoothed reaches it at step 60
    fast = [0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]  # smoothed: 0.5, 0.7, 0.767, 0.9: stays from step 30
    objective = [1.0, 0.8, 0.6, 0.5, 0.4, 0.4, 0.4]
    runs = [
        run_info("adamw", 0, base, objective=objective),
        run_info("adamw", 1, base, objective=objective),
        run_info("effopt", 0, fast, objective=objective, events=[{"step": 10, "accepted": 3.0, "values": [0.5, 0.4]}]),
        run_info("effopt", 1, [0.5] * 7, objective=objective),  # never reaches the target: a miss, not a dropped seed
    ]
    summary = summarise(runs)["t"]
    assert summary["adamw"]["speedup_steps"] == 1.0 and summary["adamw"]["steps_to_target"] == 60
    ours = summary["effopt"]
    assert ours["per_seed"]["i0-s0"]["steps_to_target"] == 30 and ours["per_seed"]["i0-s1"]["steps_to_target"] is None
    assert ours["reached"] == "1/2" and ours["speedup_steps_per_seed"] == [2.0, 0.0]
    assert ours["steps_to_target"] is None  # the median of 30 and never is never
    assert ours["speedup_steps"] == 1.0  # the median of 2x and 0x
    # the objective: 0.4 at the tail, target 1.0 - 0.95 * 0.6 = 0.43; smoothed 0.467 at 40, 0.433 at 50, 0.4 at 60
    assert ours["steps_to_objective_target"] == summary["adamw"]["steps_to_objective_target"] == 60
    assert set(ours["per_seed"]["i0-s0"]) >= {
        "steps_to_target",
        "seconds_to_target",
        "final_metric",
        "retained_final",
        "steps_to_objective_target",
    }


def test_instances_are_summarised_each_and_the_objective_decides_where_the_metric_is_noise():
    base = [0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9]
    flat = [0.70, 0.70, 0.71, 0.71, 0.72, 0.72, 0.72]  # a gain of 0.02 on 512 examples: within the noise
    fast = [0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    objective, quick_objective = [1.0, 0.8, 0.6, 0.5, 0.4, 0.4, 0.4], [1.0, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]
    runs = []
    for instance, seed, metric in ((0, 0, base), (0, 1, base), (1, 0, flat)):
        runs.append(dict(run_info("adamw", seed, metric, objective=objective, instance=instance), metric_examples=512))
        runs.append(
            run_info("effopt", seed, fast if metric is base else metric, objective=quick_objective, instance=instance)
        )
    ours = summarise(runs)["t"]["effopt"]
    assert ours["instances"] == [0, 1] and ours["cases"] == 3
    assert ours["per_seed"]["i1-s0"]["metric_target"] is None
    assert ours["per_seed"]["i1-s0"]["metric_target_conditioned"] is False
    assert ours["reached"] == "2/2"  # the ill-conditioned case leaves the metric's medians
    first, second = ours["per_instance"]["0"], ours["per_instance"]["1"]
    assert first["speedup_decisive"] == first["speedup_steps"] == 2.0 and first["conditioned"] == "2/2"
    # instance 1: the objective's target (1.0 - 0.95 * 0.6 = 0.43) at step 60 for adamw, 30 for effopt (smoothed)
    assert second["speedup_steps"] is None and second["speedup_decisive"] == second["speedup_objective"] == 2.0
    assert ours["worst_instance_speedup"] == 2.0


def test_self_tuning_charges_adamw_tuned_its_whole_sweep_and_the_lr_free_rows_nothing():
    """AlgoPerf's two rulesets: the sweep (every grid run to the target, or to its budget where it never gets there)
    is free under external tuning and paid under self-tuning; effopt and Prodigy tune nothing."""
    from benchmarks.report import sources

    base = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.88, 0.9]  # its smoothed curve stays at its target from step 70
    fast = [0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]  # from step 30 (three points smoothed)
    never = [0.5] * 8
    runs = [
        run_info("adamw", 0, base),
        run_info("adamw-3x", 0, fast, multiple=3),
        run_info("adamw-10x", 0, never, multiple=10),
        run_info("adamw-tuned", 0, fast, multiple=3),
        run_info("effopt", 0, [0.5, 0.6, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]),  # from step 40
        run_info("prodigy", 0, fast),
    ]
    summary = summarise(runs)["t"]
    tuned, ours, prodigy = summary["adamw-tuned"], summary["effopt"], summary["prodigy"]
    # 70 (the task lr's run) + 30 (3x) + 70 (10x never gets there: its whole budget), 0.1 s a step
    assert tuned["sweep"] == {"0": {"steps": 170, "seconds": pytest.approx(17.0), "runs": 3}}
    assert tuned["self_tuning_steps_to_target"] == 170 + 30
    assert ours["speedup_vs_tuned_external"] == 30 / 40
    assert ours["speedup_vs_tuned_self_tuning"] == 200 / 40
    assert prodigy["speedup_vs_tuned_external"] == 1.0 and prodigy["speedup_vs_tuned_self_tuning"] == 200 / 30
    assert tuned["speedup_vs_tuned_external"] == tuned["speedup_vs_tuned_self_tuning"] == 1.0
    assert "sweep" not in ours  # the sweep is adamw-tuned's alone
    for run in runs:
        run["commit"] = "abc"
    assert sources(runs)[0] == "Every run was made by commit `abc`."
    runs[0]["dirty"] = True
    assert sources(runs)[0].startswith("**WARNING")
