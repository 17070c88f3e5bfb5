"""Smoke tests of the OPD reference loop (reference/opd.py) at its tiny size, in a temporary cache."""

import json
import math

import pytest
import torch

from reference import opd
from reference.opd import OPDConfig


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EFFOPT_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def _files(folder):
    return {path.name: path.stat().st_mtime_ns for path in folder.iterdir() if path.suffix == ".pt"}


def _without_timings(result):
    return [{k: v for k, v in point.items() if not k.endswith("seconds")} for point in result["curve"]]


def test_runs_end_to_end_and_reuses_the_cache(cache):
    cfg = OPDConfig(size="tiny", steps=4, eval_every=2, device="cpu")
    task = opd.prepare(cfg, progress=False)
    files = _files(cache)
    assert len(files) == 2  # the teacher and the student's start

    seen = {}

    def make_optimizer(model, probes):
        seen.update(probes)
        return torch.optim.AdamW(model.parameters(), lr=1e-3)

    result = opd.train(cfg, make_optimizer=make_optimizer, task=task, progress=False)
    assert {name: mode for name, (_, mode) in seen.items()} == {
        "loss": "min",
        "rollout": "min",
        "accuracy": "max",
        "drift": "min",
    }
    assert [point["step"] for point in result["curve"]] == [0, 2, 4]
    assert result["curve"][0]["loss"] is None
    for point in result["curve"]:
        assert 0.0 <= point["metric"] <= 1.0 and math.isfinite(point["objective"]) and 0.0 <= point["retained"] <= 1.0
        assert point["loss"] is None or math.isfinite(point["loss"])
    assert result["initial_metric"] == result["curve"][0]["metric"]
    assert result["final_metric"] == result["curve"][-1]["metric"]
    assert result["train_seconds"] > 0 and result["device"] == "cpu" and result["events"] == []
    json.dumps(result)

    again = opd.prepare(cfg, progress=False)  # warm: loads, never retrains or rewrites
    assert _files(cache) == files
    for name, tensor in task.student_state.items():
        assert torch.equal(tensor, again.student_state[name])


def test_same_seed_same_curve_and_both_losses(cache):
    cfg = OPDConfig(size="tiny", regime="far", loss="full", steps=3, eval_every=1, device="cpu")
    task = opd.prepare(cfg, progress=False)
    first = opd.train(cfg, task=task, progress=False)
    assert _without_timings(first) == _without_timings(opd.train(cfg, task=task, progress=False))
    other = opd.train(
        OPDConfig(size="tiny", regime="far", steps=3, eval_every=1, device="cpu", seed=1), task=task, progress=False
    )
    assert all(math.isfinite(point["loss"]) for point in other["curve"][1:])
    assert first["config"]["lr"] == opd.REGIMES["far"].lr  # None resolved to the regime's default


def test_probes_are_deterministic_and_leave_mode_and_rng_alone(cache):
    task = opd.prepare(OPDConfig(size="tiny", device="cpu"), progress=False)
    student = opd.build_model(task.student_spec)
    student.load_state_dict(task.student_state)
    student.train()
    probes = opd.make_probes(task, student)
    for name, (probe, _) in probes.items():
        rng = torch.get_rng_state()
        value = probe()
        assert isinstance(value, float) and math.isfinite(value), name
        assert value == probe(), name
        assert torch.equal(rng, torch.get_rng_state()), name
        assert student.training, name


def test_a_corrupt_or_mismatched_cache_file_is_rebuilt(cache):
    cfg = OPDConfig(size="tiny", device="cpu")
    task = opd.prepare(cfg, progress=False)
    teacher_file = next(path for path in cache.iterdir() if path.name.startswith("opd-teacher"))
    teacher_file.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unreadable"):
        rebuilt = opd.prepare(cfg, progress=False)
    for name, tensor in task.teacher.state_dict().items():  # training is deterministic: the same teacher again
        assert torch.equal(tensor, rebuilt.teacher.state_dict()[name])

    student_file = next(path for path in cache.iterdir() if path.name.startswith("opd-student"))
    saved = torch.load(student_file, weights_only=True)
    saved["state_dict"].pop(next(iter(saved["state_dict"])))  # same config, a tensor missing
    torch.save(saved, student_file)
    with pytest.warns(UserWarning, match="rebuilding"):
        opd.prepare(cfg, progress=False)
    assert len(torch.load(student_file, weights_only=True)["state_dict"]) == len(task.student_state)

    data_folder = next(path for path in cache.iterdir() if path.name.startswith("opd-data"))
    (data_folder / "effopt_config.json").unlink()
    with pytest.warns(UserWarning, match="unreadable"):
        again = opd.prepare(cfg, progress=False)
    assert again.data["eval"].answers == task.data["eval"].answers


def test_command_line_writes_the_curve(cache, tmp_path):
    out = tmp_path / "run" / "curve.json"
    opd.main(
        ["--size", "tiny", "--steps", "2", "--eval-every", "1", "--device", "cpu", "--no-progress", "--out", str(out)]
    )
    result = json.loads(out.read_text())
    assert [point["step"] for point in result["curve"]] == [0, 1, 2] and result["config"]["size"] == "tiny"


def test_rejects_a_task_prepared_for_another_config(cache):
    task = opd.prepare(OPDConfig(size="tiny", device="cpu"), progress=False)
    with pytest.raises(ValueError, match="prepared for"):
        opd.train(OPDConfig(size="tiny", regime="far", device="cpu"), task=task, progress=False)
    with pytest.raises(ValueError, match="regime"):
        OPDConfig(regime="close").resolved()


def test_runs_with_effopt(cache):
    cfg = OPDConfig(size="tiny", optimizer="effopt", steps=4, eval_every=2, device="cpu")
    result = opd.train(cfg, progress=False)
    bare = opd.train(OPDConfig(size="tiny", optimizer="adamw", steps=4, eval_every=2, device="cpu"), progress=False)
    assert [event["step"] for event in result["events"]] == [1, 3]  # Backoff: waits of 1, then 2, then 4
    for event in result["events"]:
        assert event["multipliers"][0] == 1.0 and all(math.isfinite(v) for v in event["values"])
        assert event["accepted"] in event["multipliers"] or event["accepted"] == 1.0
    if any(event["accepted"] != 1.0 for event in result["events"]):  # a move changed the run
        assert _without_timings(result) != _without_timings(bare)
    assert 0.0 <= result["final_metric"] <= 1.0 and 0.0 <= result["curve"][-1]["retained"] <= 1.0
    json.dumps(result["events"])


def test_effopt_reads_the_probe_the_config_names(cache):
    task = opd.prepare(OPDConfig(size="tiny", device="cpu"), progress=False)
    values = {}
    for probe in ("loss", "rollout"):
        cfg = OPDConfig(size="tiny", optimizer="effopt", steps=1, eval_every=1, device="cpu", probe=probe)
        values[probe] = opd.train(cfg, task=task, progress=False)["events"][0]["values"][0]
    assert values["loss"] != values["rollout"] and all(math.isfinite(v) for v in values.values())
    with pytest.raises(ValueError, match="probe: expected one of loss, rollout, accuracy, got 'kl'"):
        OPDConfig(probe="kl").resolved()


def test_the_retained_skill_is_learnt_and_held_out(cache):
    task = opd.prepare(OPDConfig(size="tiny", device="cpu"), progress=False)
    skill, addition = task.data["skill_eval"], task.data["eval"]
    assert skill.prompt_ids.shape == addition.prompt_ids.shape and skill.answer_ids.shape == addition.answer_ids.shape
    assert all(p.startswith("+") and a == p[1:-1][::-1][: len(a)] for p, a in zip(skill.prompts, skill.answers))
    assert not set(skill.prompts) & set(task.data["skill_train"].prompts)
    student = opd.build_model(task.student_spec)
    student.load_state_dict(task.student_state)
    student.eval()
    guarded = opd.make_probes(task, student)["drift"][0]  # the guard's drift, on skill_dev
    with torch.no_grad():
        start = opd.retention(task, student)
        assert start["drift"] == pytest.approx(0.0, abs=1e-6)  # KL of the start to itself
        assert guarded() == pytest.approx(0.0, abs=1e-6)
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        assert opd.retention(task, student)["drift"] > 1e-4 and guarded() > 1e-4


def test_grpo_rewards_exact_answers_and_pushes_towards_them(cache):
    task = opd.prepare(OPDConfig(size="tiny", device="cpu"), progress=False)
    student = opd.build_model(task.student_spec)
    student.load_state_dict(task.student_state)
    split = task.data["opd"]
    prompt = split.prompt_ids[:1].repeat(4, 1)  # one group of 4 samples of the same prompt
    right = split.answer_ids[0]
    wrong = right.clone()
    wrong[0] = (wrong[0] - 4 + 1) % 10 + 4  # another digit first: the answer is wrong
    answers = [split.answers[0]] * 4

    all_right = torch.stack([right] * 4)
    loss, error = opd.grpo_loss(student, prompt, all_right, answers, group_size=4)
    assert error == 0.0 and loss.item() == 0.0  # a group that agrees has no advantage

    mixed = torch.stack([right, wrong, right, wrong])
    loss, error = opd.grpo_loss(student, prompt, mixed, answers, group_size=4)
    assert error == 0.5
    before = opd.log_probs(student, prompt[:2], mixed[:2]).gather(-1, mixed[:2, :, None]).sum((1, 2))
    loss.backward()
    torch.optim.SGD(student.parameters(), lr=0.1).step()
    after = opd.log_probs(student, prompt[:2], mixed[:2]).gather(-1, mixed[:2, :, None]).sum((1, 2))
    assert after[0] > before[0] and after[1] < before[1]  # the right answer gains, the wrong one loses


def test_grpo_loop_runs_and_checks_its_group(cache):
    cfg = OPDConfig(size="tiny", loss="grpo", group_size=4, steps=3, eval_every=1, device="cpu")
    result = opd.train(cfg, progress=False)
    assert all(0.0 <= point["loss"] <= 1.0 for point in result["curve"][1:])  # the rollouts' error rate
    with pytest.raises(ValueError, match="group_size"):
        OPDConfig(loss="grpo", group_size=1).resolved()
    with pytest.raises(ValueError, match="batch_size"):
        OPDConfig(size="tiny", loss="grpo", group_size=3).resolved()  # 16 prompts do not split into groups of 3


def test_the_command_line_shows_its_defaults_and_they_are_the_benchmarks(capsys):
    from benchmarks.tasks import tasks

    with pytest.raises(SystemExit):
        opd.main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    near = next(t for t in tasks("quick") if t.name == "opd-near")
    assert "--loss {sampled,full,grpo} see OPDConfig.loss (default: full)" in shown and "(default: 300)" in shown
    assert "full-vocabulary reverse KL, 300 steps" in near.notes and near.lr == opd.REGIMES["near-teacher"].lr


def test_the_loops_show_events_as_they_go(cache, capsys):
    from reference import sft
    from reference.common import last_event

    assert last_event(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)) == ""
    sft.train(sft.SFTConfig(size="tiny", optimizer="effopt", steps=4, eval_every=2, device="cpu"), progress=True)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sft step")]
    assert len(lines) == 3 and "last event" not in lines[0]
    assert "last event x" in lines[-1] and lines[-1].endswith("at step 3")  # Backoff's events: after steps 1 and 3
