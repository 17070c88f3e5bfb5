"""AlgoPerf's fixed target on hand-made runs of the real model's two tasks (benchmarks.fixed_target): per case, the
target is adamw-tuned's on that case; a row from 1e-6 is scored against it; the same-lr view stays beside it; the
reused runs are rows of both tasks and runs once (benchmarks.summary, benchmarks.report)."""

import pytest
from handmade import FAST, SLOW, real_runs, run_info

from benchmarks import fixed_target
from benchmarks.real import SMOL, SMOL_LOW
from benchmarks.summary import PUBLISHED, from_published, summarise


def test_the_fixed_target_is_adamw_tuneds_on_each_case_and_a_row_from_1e6_is_scored_against_it():
    summary = summarise(real_runs())
    low, high = summary[SMOL_LOW], summary[SMOL]
    for task in (low, high):
        cases = task["effopt"]["per_seed"]
        assert cases["i0-s0"]["fixed_metric_target"] == pytest.approx(0.88)  # seed 0's adamw-tuned run's
        assert cases["i0-s1"]["fixed_metric_target"] == pytest.approx(0.785)  # seed 1's: its own case's
        assert task["adamw-tuned"]["steps_to_fixed_target"] == 50
    ours = low["effopt"]  # from 1e-6, at step 30 on both cases, 3 s (0.1 s a step)
    assert [c["steps_to_fixed_target"] for c in ours["per_seed"].values()] == [30, 30]
    assert ours["steps_to_fixed_target"] == 30 and ours["seconds_to_fixed_target"] == pytest.approx(3.0)
    assert ours["reached_steps_to_fixed_target"] == "2/2"
    assert low["adamw"]["steps_to_fixed_target"] is None and low["adamw"]["reached_steps_to_fixed_target"] == "0/2"
    assert high["adamw"]["steps_to_fixed_target"] is None  # 2e-5's adamw ends under seed 0's target: never there
    # the best peer: prodigy (40 and 30 steps: 35) before adamw-tuned (50) and schedulefree (never)
    assert fixed_target.best_peer(low, "steps_to_fixed_target") == ("prodigy", 35)
    assert fixed_target.share(ours["steps_to_fixed_target"], ("prodigy", 35)) == pytest.approx(30 / 35)
    assert fixed_target.share(None, ("prodigy", 35)) is None and fixed_target.share(30, None) == 0.0
    # the same-lr view stays: effopt over adamw at 1e-6, to adamw's own target (0.5 + 0.95 * 0.05 = 0.5475)
    assert ours["per_seed"]["i0-s0"]["metric_target"] == pytest.approx(0.5475)
    assert ours["speedup_steps"] == pytest.approx(60 / 10) and ours["target_from"] == "adamw-tuned"
    # summary.json's subset gives the same figures back
    published = {t: {m: {k: f[k] for k in PUBLISHED if k in f} for m, f in ms.items()} for t, ms in summary.items()}
    again = from_published(published)[SMOL_LOW]["effopt"]
    for key in ("steps_to_fixed_target", "seconds_to_fixed_target", "reached_steps_to_fixed_target"):
        assert again[key] == ours[key]


def test_a_task_scored_on_adamws_target_gets_no_fixed_figures():
    runs = [run_info("adamw", 0, SLOW), run_info("effopt", 0, FAST)]
    summary = summarise(runs)["t"]
    assert not fixed_target.is_fixed(summary) and "steps_to_fixed_target" not in summary["effopt"]
    assert "fixed_metric_target" not in summary["effopt"]["per_seed"]["i0-s0"]
    assert fixed_target.fixed_table(summary) == [] and fixed_target.defaults_table({"t": summary}) == []


def test_the_tables_show_both_defaults_the_best_peer_and_what_the_run_lacks():
    summary = summarise(real_runs())
    table = fixed_target.defaults_table(summary)
    row = next(line for line in table if line.startswith("| 1e-06 (opd-smol-lr1e-06) | metric |"))
    cells = row.split(" | ")
    assert cells[2] == "never, 0/2" and cells[6] == "30 / 3 s, 2/2"  # adamw at 1e-6, effopt
    assert cells[7] == "prodigy: 35 steps, 3.5 s" and cells[8] == "0.86 / 0.86 |"
    task = fixed_target.fixed_table(summary[SMOL_LOW])
    assert "Best peer, to the metric's target: prodigy: 35 steps, 3.5 s" in task[0]
    assert any(line.startswith("| effopt | 1e-06 | 30 [30..30] 2/2 | 3.0 | 0.86, 0.86 |") for line in task)
    # the old one-task runs: no opd-smol-lr1e-06, no schedulefree
    old = summarise(real_runs(with_low=False, peers=("adamw-tuned", "prodigy")))
    table = fixed_target.defaults_table(old)
    assert "| opd-smol-lr1e-06: not run | metric | not run | not run |" in table[4]
    assert table[2].split(" | ")[5] == "not run"  # schedulefree at 2e-5
    assert "(peers not run: schedulefree)" in fixed_target.fixed_table(old[SMOL])[0]


def test_the_report_reads_runs_made_before_targets_were_recorded_as_their_task_is_defined_now(tmp_path):
    from benchmarks.report import duration_text, with_targets

    runs = real_runs()
    for run in runs:
        del run["target_from"]
        run["mode"] = "real"
    runs.append(dict(run_info("adamw", 0, SLOW), mode="quick", task="opd-near"))
    runs.append(dict(run_info("adamw", 0, SLOW), mode="real", task="not-a-task"))
    marked = with_targets(runs)
    assert {r["target_from"] for r in marked if r["task"] in (SMOL, SMOL_LOW)} == {"adamw-tuned"}
    assert marked[-2]["target_from"] == marked[-1]["target_from"] == "adamw"
    # the reused rows are rows of opd-smol-lr1e-06, and runs once: its 5 reused rows cost no time
    assert sum(bool(r.get("reused")) for r in runs) == 5
    assert duration_text({}, runs[:-2]) == ["Time: its 20 runs took 0.2 minutes (reused runs not counted).", ""]
