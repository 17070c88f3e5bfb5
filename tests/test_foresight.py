"""The foresight harness: checkpoints by step hooks, early figures on trajectories of known shape, rank correlation,
and the OPD-vs-GRPO report end to end at tiny size."""

import json

import pytest
import torch

from benchmarks.foresight import Checkpoints, main, module_kind, trajectory
from benchmarks.yardstick import spearman


def test_checkpoints_in_memory_from_step_zero_to_the_end():
    """SGD on a linear loss: every step moves the weights the same way, so the early update points as the last."""
    w = torch.nn.Parameter(torch.zeros(6, 5))
    checkpoints = Checkpoints({"0": w}, keep=lambda step: step % 5 == 0 or step == 23)
    opt = checkpoints.attach(torch.optim.SGD([w], lr=0.1))
    direction = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    for _ in range(23):
        w.grad = direction.clone()
        opt.step()
    assert sorted(checkpoints.saved) == [0, 5, 10, 15, 20, 23]
    assert torch.equal(checkpoints[0]["0"], torch.zeros(6, 5)) and torch.equal(checkpoints[23]["0"], w.detach())
    figures = trajectory(checkpoints)["early"]
    assert figures["early_step"] == 5 and figures["steps"] == 23  # the saved step nearest 10% of the run, after 0
    assert figures["cosine"] == pytest.approx(1.0) and figures["principal_angle"] == pytest.approx(0.0, abs=1e-4)


def test_a_run_that_turns_late_has_a_low_early_alignment(tmp_path):
    w = torch.nn.Parameter(torch.zeros(6, 5))
    opt = torch.optim.SGD([w], lr=0.1)
    checkpoints = Checkpoints({"w": w}, keep=lambda step: True, folder=tmp_path / "ckpt")
    checkpoints.attach(opt)
    g = torch.Generator().manual_seed(1)
    early_direction, late_direction = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    for step in range(1, 21):
        w.grad = early_direction if step <= 2 else 3 * late_direction
        opt.step()
    assert len(list((tmp_path / "ckpt").glob("step*.pt"))) == 21  # step 0 and every step, on disk
    figures = trajectory(checkpoints)["early"]
    want = torch.nn.functional.cosine_similarity(
        early_direction.flatten(), (2 * early_direction + 54 * late_direction).flatten(), dim=0
    )
    assert figures["cosine"] == pytest.approx(float(want), abs=1e-5) and figures["cosine"] < 0.5


def test_spearman_and_module_kinds():
    assert spearman([1, 2, 3, 4], [10, 20, 25, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 1, 1]) is None and spearman([1, 2], [1, 2]) is None
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)  # ties share a rank
    assert module_kind("model.layers.1.self_attn.q_proj.weight") == "q_proj"
    assert module_kind("model.embed_tokens.weight") == "embed_tokens" and module_kind("lm_head.weight") == "lm_head"


def test_opd_against_grpo_report_runs_at_tiny_size(tmp_path, monkeypatch):
    monkeypatch.setenv("EFFOPT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    main(["--size", "tiny", "--steps", "6", "--every", "2", "--seeds", "0", "--out", str(out)])
    report = (out / "FORESIGHT.md").read_text()
    assert "Does OPD show higher concentration and earlier alignment than GRPO here?" in report
    assert (out / "foresight.png").stat().st_size > 0
    published = json.loads((out / "foresight.json").read_text())
    run = published["over_time"]["OPD-seed0"]
    assert run["steps"] == [0, 2, 4, 6] and len(run["figures"]) == 4
    assert 0 < run["early"]["cosine"] <= 1 + 1e-9 and 0 < run["early"]["energy_k"] <= 1 + 1e-9
    assert len(published["answers"]) == 6 and published["early"]["OPD"]["settled_step"] in (2, 4, 6)
    assert len(list((tmp_path / "cache" / "foresight" / "OPD-seed0").glob("step*.pt"))) == 4
