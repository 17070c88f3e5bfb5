"""The benchmark harness runs one tiny task end to end and its report is written (no speed-up is asserted)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_harness_and_report_run_end_to_end(tmp_path):
    env = dict(os.environ, EFFOPT_BENCH_MODE="smoke", EFFOPT_CACHE=str(tmp_path / "cache"))
    raw = tmp_path / "bench.json"
    subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", "-q", "-p", "no:cacheprovider", f"--benchmark-json={raw}"],
        cwd=ROOT, env=env, check=True,
    )
    out = tmp_path / "results"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.report", str(raw), "--out", str(out), "--no-readme"],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["classic"]) == {"adamw", "effopt"}
    for figures in summary["classic"].values():
        assert set(figures) == {"steps_to_target", "seconds_to_target", "final_metric", "speedup_steps",
                                "speedup_seconds", "seeds", "device"}
    assert summary["classic"]["adamw"]["speedup_steps"] == 1.0
    report = (out / "REPORT.md").read_text()
    assert "## classic" in report and "## Overhead" in report and "## Foresight against speed-up" in report
    runs = {b["extra_info"]["method"]: b["extra_info"] for b in json.loads(raw.read_text())["benchmarks"]
            if b["extra_info"].get("kind") == "speedup"}
    assert runs["adamw"]["foresight"]["steps"] == 40 and runs["adamw"]["foresight"]["early_step"] == 5
    assert -1 <= runs["adamw"]["foresight"]["cosine"] <= 1 and runs["effopt"]["foresight"] is None
    assert (out / "classic.png").stat().st_size > 0


def test_full_mode_covers_both_regimes_three_seeds_and_several_learning_rates():
    from benchmarks.tasks import tasks

    full = tasks("full")
    names = [t.name for t in full]
    assert {"opd-near", "opd-far", "sft", "echodistill", "classic"} <= set(names)
    assert all(t.seeds == (0, 1, 2) for t in full)
    assert sum(n.startswith("opd-near") for n in names) >= 3 and sum(n.startswith("opd-far") for n in names) >= 3
