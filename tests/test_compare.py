"""benchmarks.compare: one method's rows in two runs of the race, read against the same baselines."""

import json

from benchmarks import compare
from tests.handmade import run_info

BASE = [0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9]  # smoothed over 3: reaches 0.88 (the target) at step 60
SLOW = [0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9]
FAST = [0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]  # smoothed: 0.5, 0.7, 0.767, 0.9 from step 30: 2x


def _bench(path, runs):
    path.write_text(json.dumps({"benchmarks": [{"extra_info": dict(r, kind="speedup")} for r in runs]}))
    return path


def test_a_change_is_read_case_by_case_against_the_baseline_of_either_run(tmp_path):
    base = run_info("adamw", 0, BASE, retained=[0.9] * 7)
    old = _bench(tmp_path / "old.json", [base, run_info("effopt", 0, SLOW, retained=[0.9] * 7)])
    # NEW holds only the method's rows: the baseline comes from OLD, the same run
    new = _bench(
        tmp_path / "new.json", [run_info("effopt", 0, FAST, retained=[0.9] * 6 + [0.6], events=[{"accepted": 16.0}])]
    )
    rows = compare.compare(compare.speedup_runs(old), compare.speedup_runs(new), "effopt")
    (case,) = rows["t"]
    assert case["old"]["metric"] == 1.0 and case["new"]["metric"] == 2.0
    assert case["old"]["objective"] is None  # no objective recorded: no target
    assert case["new"]["retained"] == (0.9 + 0.9 + 0.6) / 3 and case["new"]["events"] == [16.0]
    text = compare.report(rows, "effopt", "old.json", "new.json")
    assert "| t | 1.00x -> 2.00x | n/a -> n/a | 1 |" in text and "0.900 -> 0.800" in text
    compare.main([str(old), str(new), "--out", str(tmp_path / "out")])
    assert (tmp_path / "out" / "REPORT.md").read_text() == text


def test_a_case_missing_from_either_run_or_its_baseline_is_left_out(tmp_path):
    old = _bench(tmp_path / "old.json", [run_info("effopt", 0, SLOW)])  # no baseline anywhere
    new = _bench(tmp_path / "new.json", [run_info("effopt", 0, FAST), run_info("effopt", 1, FAST)])
    assert compare.compare(compare.speedup_runs(old), compare.speedup_runs(new), "effopt") == {}
