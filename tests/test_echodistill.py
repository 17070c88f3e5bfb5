"""The EchoDistill reference loop: the noise mixer, the reward, and the loop end to end at tiny size."""

import copy
import json
import math

import numpy as np
import pytest
import torch

from reference import audio, echodistill
from reference.common import group_advantages
from reference.echodistill import EchoConfig


@pytest.mark.parametrize("kind", audio.NOISE_TYPES)
def test_mix_hits_the_requested_snr(kind):
    rng = np.random.default_rng(0)
    clean = np.stack([audio.make_clip(task, rng)[0] for task in audio.TASKS])
    noise = np.stack([audio.make_noise(kind, clean.shape[1], rng, pool=clean) for _ in clean])
    for snr in audio.SNRS:
        noisy = audio.mix(torch.from_numpy(clean), torch.from_numpy(noise), snr)
        residual = noisy - torch.from_numpy(clean)
        measured = 10 * torch.log10(torch.from_numpy(clean).pow(2).sum(-1) / residual.pow(2).sum(-1))
        assert (measured - snr).abs().max() < 0.1, (kind, snr, measured)


def test_split_pairs_clean_and_noisy_versions():
    ds = audio.make_split(5, seed=3, snrs=(-10, 30))
    row = ds[0]
    assert row["snr"] == [-10, 30] and len(row["noise"]) == 2
    assert np.asarray(row["noisy"]).shape == (2, len(row["clean"]))
    assert row["answer"] in [f"{letter} {word}" for letter, word in zip(audio.LETTERS, row["choices"])]
    again = audio.make_split(5, seed=3, snrs=(-10, 30))
    assert np.array_equal(np.asarray(again[4]["noisy"]), np.asarray(ds[4]["noisy"]))


def test_task_reward():
    offered = ["A rising", "B falling"]
    assert echodistill.task_reward("B falling", "B falling", offered) == 1.0
    assert echodistill.task_reward("A rising", "B falling", offered) == -1.0
    partial = echodistill.task_reward("B", "B falling", offered)  # a letter alone: F1 2/3
    assert partial == pytest.approx(-1 / 3)
    assert echodistill.task_reward("", "B falling", offered) == -1.0
    assert -1.0 < echodistill.task_reward("A falling", "B falling", offered) < 0.0


def test_published_bonus_cancels_and_per_candidate_bonus_ranks():
    task = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    kl = torch.tensor([-math.log(0.8)])  # exp(-KL) = 0.8 for the prompt
    old = torch.tensor([[0.9, 0.1, 0.5, 0.6]]).log()  # the clean teacher's mean log-prob of each candidate
    published = echodistill.shaped_reward(task, EchoConfig(bonus="published", beta=0.5), kl, old)
    assert torch.allclose(published, torch.tensor([[1.4, -1.0, 1.4, -1.0]]))
    assert torch.allclose(group_advantages(published), group_advantages(task), atol=1e-3)  # cancelled
    per_candidate = echodistill.shaped_reward(task, EchoConfig(bonus="per-candidate", beta=0.5), kl, old)
    advantages = group_advantages(per_candidate)[0]
    assert advantages[0] > advantages[2] and advantages[3] > advantages[1]  # ranks within the right and the wrong
    none = echodistill.shaped_reward(task * 3, EchoConfig(bonus="none"), kl, old)
    assert torch.equal(none, torch.tensor([[2.0, -1.0, 2.0, -1.0]]))  # clipped to [-1, 2]


def _curve_values(result):
    return [{k: v for k, v in p.items() if not k.endswith("seconds")} for p in result["curve"]]


def test_loop_end_to_end_at_tiny_size(tmp_path, monkeypatch):
    monkeypatch.setenv("EFFOPT_CACHE", str(tmp_path / "cache"))
    cfg = EchoConfig(size="tiny", steps=4, eval_every=2, group_size=4, batch_size=4)
    task = echodistill.prepare(cfg)

    seen = {}

    def make_optimizer(model, probes):
        seen["probes"], seen["model"] = probes, model
        assert all(p.requires_grad for p in model.parameters())
        return torch.optim.AdamW(model.parameters(), lr=1e-3)

    result = echodistill.train(cfg, make_optimizer=make_optimizer, task=task, progress=False)
    assert [p["step"] for p in result["curve"]] == [0, 2, 4]
    for point in result["curve"]:
        assert {"step", "train_seconds", "eval_seconds", "metric", "loss", "acc", "noisy", "gsr"} <= set(point)
        assert 0.0 <= point["metric"] <= 1.0 and math.isfinite(point["loss"])
    assert result["initial_metric"] == result["curve"][0]["metric"]
    assert result["final_metric"] == result["curve"][-1]["metric"]
    assert result["curve"][0]["noisy"] == result["curve"][0]["gsr"]  # at step 0 the student is the teacher
    assert set(result["per_snr"]["final"]) == set(audio.SNRS)
    json.dumps(result)

    # the probes: floats, deterministic, RNG-free, and they leave the model in train mode
    model = seen["model"]
    model.train()
    rng_state = torch.get_rng_state()
    for probe, mode in seen["probes"].values():
        value = probe()
        assert isinstance(value, float) and value == probe()
        assert model.training
    assert torch.equal(rng_state, torch.get_rng_state())
    start = copy.deepcopy(task.teacher).train()  # the guard's drift is the KL to the start: 0 there, > 0 after steps
    assert echodistill.make_probes(start, task, cfg.strong_snr)["drift"][0]() == pytest.approx(0.0, abs=1e-6)
    assert seen["probes"]["drift"][0]() > 1e-6

    # effopt with a guard on that drift: the reference is read at the first event, and every move is checked
    guarded = echodistill.train(
        EchoConfig(
            size="tiny",
            steps=3,
            eval_every=3,
            group_size=4,
            batch_size=4,
            optimizer="effopt-guard",
            final_all_snrs=False,
        ),
        task=task,
        progress=False,
    )
    first = guarded["events"][0]
    assert first["guard"][0][0] == 1.0
    assert all(e["accepted"] == 1.0 or e["guard"] for e in guarded["events"])

    # same seed, same optimizer: the same curve; the ablations and the published bonus run
    again = echodistill.train(cfg, make_optimizer=make_optimizer, task=task, progress=False)
    assert _curve_values(again) == _curve_values(result)
    for method, bonus in [("grpo", "per-candidate"), ("distill", "per-candidate"), ("full", "published")]:
        other = EchoConfig(
            size="tiny",
            steps=2,
            eval_every=2,
            group_size=4,
            batch_size=4,
            method=method,
            bonus=bonus,
            final_all_snrs=False,
        )
        out = echodistill.train(other, task=task, progress=False)
        assert math.isfinite(out["curve"][-1]["loss"]) and "per_snr" not in out

    # the command line writes the JSON curve
    path = tmp_path / "curve.json"
    echodistill.main(
        [
            "--size",
            "tiny",
            "--steps",
            "2",
            "--eval-every",
            "1",
            "--group-size",
            "2",
            "--final-all-snrs",
            "false",
            "--out",
            str(path),
        ]
    )
    written = json.loads(path.read_text())
    assert [p["step"] for p in written["curve"]] == [0, 1, 2] and written["config"]["group_size"] == 2

    # a corrupt model file is reported and rebuilt, to the same weights
    (model_file,) = (tmp_path / "cache").glob("echodistill-model-*.pt")
    model_file.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unreadable"):
        rebuilt = echodistill.prepare(cfg)
    for a, b in zip(rebuilt.teacher.state_dict().values(), task.teacher.state_dict().values()):
        assert torch.equal(a, b)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="method"):
        echodistill.train(EchoConfig(size="tiny", method="ppo"))
    with pytest.raises(ValueError, match="size"):
        echodistill.prepare(EchoConfig(size="huge"))


def test_the_command_line_shows_its_defaults_and_they_are_the_benchmarks(capsys):
    with pytest.raises(SystemExit):
        echodistill.main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "EchoConfig.metric (default: noisy)" in shown and "EchoConfig.steps (default: 150)" in shown
    assert "EchoConfig.eval_every (default: 15)" in shown  # the quick benchmark's run: 150 steps, Noisy every 15
