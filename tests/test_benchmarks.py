"""The benchmark's harness: end to end on a tiny task (pytest benchmarks/, then the report), the modes' tasks, cases
and settings, the runs the quick mode reuses, the pinned CPU kernels and their fingerprint."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def test_harness_and_report_run_end_to_end(tmp_path):
    env = dict(os.environ, EFFOPT_BENCH_MODE="smoke", EFFOPT_CACHE=str(tmp_path / "cache"))
    raw = tmp_path / "bench.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "benchmarks/",
            "-q",
            "-p",
            "no:cacheprovider",
            "--benchmark-quiet",
            f"--benchmark-json={raw}",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    lines = [line.lstrip(".") for line in run.stdout.splitlines() if line.lstrip(".").startswith("[")]
    assert len(lines) == 14 and "classic instance 0 seed 0 adamw (lr 0.003)" in lines[0] and "min left]" in lines[0]
    infos = [
        b["extra_info"] for b in json.loads(raw.read_text())["benchmarks"] if b["extra_info"].get("kind") == "speedup"
    ]
    order = [(info["seed"], info["instance"], info["method"]) for info in infos]
    run_of = ["adamw", "adamw-3x", "adamw-tuned", "effopt", "effopt-tuned"]  # an instance's first seed: its grid too
    assert order == (
        [(0, 0, m) for m in run_of]
        + [(0, 1, m) for m in run_of]  # seed-major
        + [(1, 0, m) for m in ("adamw", "adamw-tuned", "effopt", "effopt-tuned")]
    )
    by = {(i["instance"], i["seed"], i["method"]): i for i in infos}
    for instance in (0, 1):  # each instance's tuned lr comes from its own grid, and its first seed reuses that run
        tuned = by[(instance, 0, "adamw-tuned")]
        assert tuned["lr_multiple"] in (1, 3)
        assert tuned["reused"] == ("adamw" if tuned["lr_multiple"] == 1 else "adamw-3x")  # the grid run, no rerun
        assert tuned["curve"] == by[(instance, 0, tuned["reused"])]["curve"]
    tuned = by[(0, 0, "adamw-tuned")]
    assert by[(0, 1, "adamw-tuned")]["lr"] == tuned["lr"] == by[(0, 1, "effopt-tuned")]["lr"]
    assert by[(0, 1, "adamw-tuned")]["reused"] is None
    out = tmp_path / "results"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.report", str(raw), "--out", str(out), "--no-readme"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["classic"]) == {"adamw", "adamw-3x", "adamw-tuned", "effopt", "effopt-tuned"}
    for figures in summary["classic"].values():
        assert set(figures) >= {
            "steps_to_target",
            "seconds_to_target",
            "final_metric",
            "speedup_steps",
            "speedup_seconds",
            "seeds",
            "device",
            "lr",
            "retained_final",
            "per_seed",
            "steps_to_objective_target",
            "speedup_steps_vs_tuned",
        }
        assert set(figures["per_seed"]) <= {f"i{i}-s{s}" for i in (0, 1) for s in (0, 1)}
        assert set(figures["per_instance"]) == {str(i) for i in figures["instances"]}
    assert summary["classic"]["adamw"]["speedup_steps"] == 1.0
    report = (out / "REPORT.md").read_text()
    assert "## classic" in report and "## Overhead" in report and "| adamw | 0.003 |" in report
    assert "CPU: " in report and "cores" in report and "| instance |" in report
    assert (out / "classic.png").stat().st_size > 0


def test_full_mode_covers_the_race_on_three_seeds():
    from benchmarks.tasks import HEADLINE, tasks

    full = {t.name: t for t in tasks("full")}
    assert {"opd-near", "opd-far", "opd-grpo", "sft", "echodistill", "classic"} <= set(full)
    held_out = {"opd-near-lr3e-06", "opd-near-lr3e-05", "opd-far-lr0.0002", "opd-far-lr0.001", "opd-near-sampled"}
    assert held_out <= set(full)
    assert set(full) - set(t.name for t in tasks("quick")) == {n for n in full if "-lr" in n or n.endswith("sampled")}
    assert all(t.seeds == (0, 1, 2) and t.instances == (0, 1, 2) for t in full.values())
    for name in ("opd-near", "sft", "echodistill"):
        task = full[name]
        assert set(HEADLINE) <= set(task.methods(0, 1)) and task.grid == (3, 10, 30)
        first = task.methods(1, 0)
        assert first.index("adamw-30x") < first.index("adamw-tuned") < first.index("effopt-tuned")


def test_heldout_mode_runs_the_held_out_tasks_alone_at_the_quick_sizes():
    from benchmarks.tasks import tasks

    held_out = {t.name: t for t in tasks("heldout")}
    full = {t.name: t for t in tasks("full")}
    assert set(held_out) == set(full) - {t.name for t in tasks("quick")}
    for name, task in held_out.items():
        assert task.methods(0, 0) == ["adamw", "effopt", "effopt-noscale", "effopt-budget"] and task.lr == full[name].lr


def test_the_number_of_seeds_is_an_environment_setting_and_bad_values_are_named():
    code = "from benchmarks.tasks import tasks; print(sorted({s for t in tasks('quick') for s in t.seeds}))"

    def run(value):
        env = dict(os.environ, EFFOPT_BENCH_SEEDS=value)
        return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)

    assert run("5").stdout.strip() == "[0, 1, 2, 3, 4]"
    for bad in ("0", "three", "-1"):
        failed = run(bad)
        assert failed.returncode != 0 and "EFFOPT_BENCH_SEEDS: expected a positive int" in failed.stderr


def test_cases_cover_every_instance_or_the_diagonal_and_bad_instance_counts_are_named():
    from benchmarks.tasks import diagonal, every, tasks

    assert every((0, 1), (0, 1, 2)) == ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2))
    assert diagonal((0, 1, 2), (0, 1, 2)) == ((0, 0), (1, 1), (2, 2))
    quick = {t.name: t for t in tasks("quick")}
    assert quick["opd-near"].cases == every((0, 1, 2), (0, 1, 2)) and quick["sft"].cases == ((0, 0), (1, 1), (2, 2))
    near = quick["opd-near"]
    assert near.methods(1, 0)[:4] == ["adamw", "adamw-3x", "adamw-10x", "adamw-30x"]  # each instance's own grid
    assert "effopt-tuned" in near.methods(1, 1) and "effopt-tuned" not in near.methods(1, 0)
    code = "import benchmarks.tasks"
    for bad in ("0", "4", "x"):
        env = dict(os.environ, EFFOPT_BENCH_INSTANCES=bad)
        failed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
        assert failed.returncode != 0 and "EFFOPT_BENCH_INSTANCES: expected 1, 2 or 3" in failed.stderr


def test_quick_mode_reuses_runs_that_are_the_same_and_declares_its_probe_costs():
    from benchmarks.tasks import PROBE_COSTS, optimizer_of, tasks
    from reference.optimizers import build_optimizer

    quick = {t.name: t for t in tasks("quick")}
    costly, trl = quick["opd-near-costly-probe"], quick["trl-distill"]
    assert costly.same_runs_as == "opd-near" and costly.tuned_from == "opd-near" and not costly.grid
    assert trl.tuned_from == "opd-near" and trl.same_runs_as is None and not trl.grid  # another loop: its own runs
    assert {"schedulefree", "effopt-paper"} <= set(quick["opd-near"].methods(0, 0))
    assert {"lookahead", "expo", "effopt-lowrank"} <= set(tasks("full")[0].methods(0, 0))  # the full mode keeps them
    assert all(t.probe_cost == PROBE_COSTS[t.name] for t in quick.values())
    assert (
        optimizer_of("effopt-budget", costly) == "effopt-budget@5.4" and optimizer_of("adamw-tuned", costly) == "adamw"
    )
    model = torch.nn.Linear(2, 1)
    probes = {"loss": (lambda: 0.0, "min")}
    assert build_optimizer("effopt-budget@5.4", model, 1e-3, probes).budget.cost == 5.4
    assert build_optimizer("effopt-budget", model, 1e-3, probes).budget.cost is None  # measured
    for bad in ("effopt@5", "effopt-budget@x"):
        with pytest.raises(ValueError, match="optimizer: "):
            build_optimizer(bad, model, 1e-3, probes)


def test_the_race_pins_its_cpu_kernels_and_names_bad_settings():
    code = "import benchmarks.pins as p; import torch; print(p.pin()['cpu_capability'], torch.ones(3).sum().item())"

    def run(**env):
        clean = {
            k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")
        }
        return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean | env, capture_output=True, text=True)

    native = run(EFFOPT_BENCH_KERNELS="native")
    assert native.returncode == 0, native.stderr
    if native.stdout.split()[0] not in ("AVX2", "AVX512"):
        pytest.skip("a CPU without AVX2: the pins do not apply")
    assert run().stdout == native.stdout  # the CPU's own kernels by default
    assert run(EFFOPT_BENCH_KERNELS="pinned").stdout.split()[0] == "AVX2"  # whatever the CPU offers beyond AVX2
    failed = run(EFFOPT_BENCH_KERNELS="fast")
    assert failed.returncode != 0 and "EFFOPT_BENCH_KERNELS: expected 'pinned' or 'native'" in failed.stderr
    failed = run(EFFOPT_BENCH_KERNELS="pinned", ATEN_CPU_CAPABILITY="avx512")  # a contradicting setting is refused
    assert failed.returncode != 0 and "ATEN_CPU_CAPABILITY: the benchmark pins it to 'avx2'" in failed.stderr


def test_the_kernels_fingerprint_is_the_same_in_two_processes_and_differs_without_the_pins():
    def fingerprint(kernels: str) -> dict:
        env = {
            k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")
        }
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.kernels", "--fingerprint"],
            cwd=ROOT,
            env=env | {"EFFOPT_BENCH_KERNELS": kernels},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(out.strip().splitlines()[-1])

    first, second = fingerprint("pinned"), fingerprint("pinned")
    assert first == second and first["kernels"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert set(first["digests"]) >= {"OPD student", "EchoDistill encoder (convolutions)", "AdamW step"}
    native = fingerprint("native")
    if native["kernels"]["cpu_capability"] == "AVX512":  # another path: other bits (what the pins are for)
        assert native["digests"]["OPD student"] != first["digests"]["OPD student"]
