"""effopt inside TRL's DistillationTrainer (examples/trl_distill.py), through the real trainer at the tiny size: events
at the scheduled optimizer steps and in the Trainer's log, resuming from a checkpoint, the model's modes, gradient
accumulation, GKD, and what happens when the trainer would not run effopt's optimizer.

Every run here is the tiny OPD task (reference.opd, size "tiny": 16 prompts a step, 2-digit addition) for a few steps,
on one thread."""

import sys
from pathlib import Path

import pytest
import torch

from effopt import ANCHOR
from effopt.integrations import unwrap_optimizer

sys.path.insert(0, str(Path(__file__).parent))
from moves import MoveRecorder

LR = 1e-3  # the tiny student moves visibly in a few steps at this lr; events accept multipliers other than 1


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def task():
    from reference.opd import OPDConfig, prepare

    return prepare(OPDConfig(size="tiny", regime="near-teacher"), progress=False)


def cfg(**kwargs):
    from reference.opd import OPDConfig

    return OPDConfig(**{**dict(size="tiny", regime="near-teacher", optimizer="effopt", lr=LR, steps=8), **kwargs})


def effopt_lines(log_history):
    return [(h["step"], h["effopt/multiplier"]) for h in log_history if "effopt/multiplier" in h]


def test_the_readme_example_logs_every_event_from_a_callback_made_before_the_trainer(tmp_path):
    """`callbacks=[EffoptCallback(probe)]` at construction: the callback never sees the trainer, yet every event (at
    Backoff's steps 1, 3, 7) moves the weights as it records and has its line in trainer.state.log_history."""
    from examples import trl_distill

    with MoveRecorder() as recorder:
        trainer = trl_distill.main(size="tiny", steps=8, lr=LR, output_dir=str(tmp_path))
    opt = unwrap_optimizer(trainer.optimizer)
    assert type(opt).__name__ == "ExtrapolatingAdamW" and opt.step_count == 8 and recorder.steps == 8
    events = [(e["step"], e["accepted"]) for e in opt.events]
    assert [s for s, _ in events] == [1, 3, 7] and recorder.checked == events
    assert any(m != 1.0 for _, m in events)
    assert effopt_lines(trainer.state.log_history) == events
    assert trainer.model.training


class ModeWatch:
    """A probe wrapper: every forward inside the probe runs in eval mode, and the modules' train/eval flags after the
    probe are those before it; and a callback: every module is back in train mode when a step ends."""

    def __init__(self, probe, model):
        self.probe, self.model, self.calls, self.bad = probe, model, 0, []

    def flags(self):
        return [m.training for m in self.model.modules()]

    def __call__(self):
        self.calls += 1
        before, seen = self.flags(), []
        handle = self.model.register_forward_pre_hook(lambda module, args: seen.append(module.training))
        try:
            value = self.probe()
        finally:
            handle.remove()
        if not seen or any(seen):
            self.bad.append(("probe forward not in eval mode", self.calls))
        if self.flags() != before:
            self.bad.append(("flags changed by the probe", self.calls))
        return value


def step_end_modes(bad):
    from transformers import TrainerCallback

    class Check(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if not all(m.training for m in model.modules()):
                bad.append(("eval mode left after step", state.global_step))

    return Check()


def test_the_benchmark_entry_point_returns_reference_opds_result_and_restores_the_model_mode(task):
    from examples import trl_distill
    from reference.optimizers import build_optimizer

    watches = []

    def make(model, probes):
        watch = ModeWatch(probes["loss"][0], model)
        watches.append(watch)
        return build_optimizer("effopt", model, LR, {**probes, "loss": (watch, "min")})

    left = []
    result = trl_distill.train(cfg(), make_optimizer=make, task=task, callbacks=[step_end_modes(left)])
    watch = watches[0]
    assert watch.calls >= 6 and not watch.bad and not left  # three events, at least two probe calls each
    assert set(result) >= {
        "config",
        "initial_metric",
        "final_metric",
        "teacher_metric",
        "curve",
        "events",
        "train_seconds",
        "eval_seconds",
        "device",
    }
    curve = result["curve"]
    assert [p["step"] for p in curve] == [0, 2, 4, 6, 8]  # tiny: eval_every 2
    assert curve[0]["loss"] is None and all(p["loss"] > 0 for p in curve[1:])
    for point in curve:
        assert set(point) == {
            "step",
            "train_seconds",
            "eval_seconds",
            "metric",
            "loss",
            "objective",
            "retained",
            "drift",
        }
    assert curve[0]["train_seconds"] == 0.0 and curve[-1]["train_seconds"] == result["train_seconds"] > 0
    assert curve[-1]["objective"] < curve[0]["objective"]
    assert [e["step"] for e in result["events"]] == [1, 3, 7]
    assert effopt_lines(result["log_history"]) == [(e["step"], e["accepted"]) for e in result["events"]]


def test_the_first_rollouts_are_reference_opds(task):
    """The prompts come in reference.opd's order and the RNG is seeded before the first rollout, so the first step
    trains on the very samples reference.opd's first step does: same loss, same weights after it (up to the rounding
    of TRL's loss kernel). From the second step TRL's per-step shuffle of the batch draws from the RNG too."""
    from examples import trl_distill
    from reference import opd

    config = cfg(optimizer="adamw", steps=1, eval_every=1, seed=3)
    ours, theirs = trl_distill.train(config, task=task), opd.train(config, task=task, progress=False)
    assert ours["curve"][1]["loss"] == pytest.approx(theirs["curve"][1]["loss"], rel=1e-5)
    assert ours["curve"][1]["objective"] == pytest.approx(theirs["curve"][1]["objective"], rel=1e-5)


def test_gradient_accumulation_counts_optimizer_steps(task):
    """Two micro-batches of 8 per optimizer step: DistillationTrainer generates the 16 rollouts once per optimizer
    step; effopt's schedule, the events and the log count optimizer steps."""
    from examples import trl_distill

    with MoveRecorder() as recorder:
        result = trl_distill.train(cfg(), task=task, per_device_train_batch_size=8, gradient_accumulation_steps=2)
    assert recorder.steps == 8
    assert [e["step"] for e in result["events"]] == [1, 3, 7] and recorder.checked == [
        (e["step"], e["accepted"]) for e in result["events"]
    ]
    assert [p["step"] for p in result["curve"]] == [0, 2, 4, 6, 8]
    assert effopt_lines(result["log_history"]) == [(e["step"], e["accepted"]) for e in result["events"]]


def _effopt_state(opt):
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.state_dict()["param_groups"]]
    anchors = [opt.state[p][ANCHOR].clone() for g in opt.param_groups for p in g["params"]]
    return groups, anchors


def test_resuming_from_a_checkpoint_continues_the_same_run(task, tmp_path):
    """Interrupted after step 4 (a checkpoint) and resumed in a new trainer, the run continues with the same anchors,
    step scale, schedule and counts, takes the same event at step 7 and ends at the same weights, bit for bit.

    Bit identity holds because everything random is restored: the Trainer saves and reloads the RNG states with the
    checkpoint, the dataset is read unshuffled (the resumed loader skips the 4 batches done), and DistillationTrainer
    regenerates its rollouts on resume (its buffer is empty; with one micro-batch per step it generates every step
    anyway). A run with gradient accumulation resumed mid-window would not be: TRL does not checkpoint its buffered
    rollouts."""
    from examples import trl_distill

    captured = {}

    def keep(name):
        def make(model, probes):
            from reference.optimizers import build_optimizer

            captured[name] = (model, build_optimizer("effopt", model, LR, probes))
            return captured[name][1]

        return make

    folder = tmp_path / "run"
    whole = trl_distill.train(
        cfg(),
        make_optimizer=keep("whole"),
        task=task,
        output_dir=str(folder),
        save_strategy="steps",
        save_steps=4,
        save_only_model=False,
    )
    assert (folder / "checkpoint-4" / "optimizer.pt").exists()
    saved = torch.load(folder / "checkpoint-4" / "optimizer.pt", weights_only=False)

    from transformers import TrainerCallback

    class AtResume(TrainerCallback):
        def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
            captured["at_resume"] = (state.global_step, _effopt_state(unwrap_optimizer(optimizer)))

    resumed = trl_distill.train(
        cfg(),
        make_optimizer=keep("resumed"),
        task=task,
        output_dir=str(tmp_path / "again"),
        resume_from_checkpoint=str(folder / "checkpoint-4"),
        callbacks=[AtResume()],
    )
    step, (groups, anchors) = captured["at_resume"]
    assert step == 4
    saved_groups = [{k: v for k, v in g.items() if k != "params"} for g in saved["param_groups"]]
    assert groups == saved_groups  # step count, schedule, step scale, counts
    assert groups[0]["effopt_step"] == 4 and groups[0]["effopt_counts"]["events"] == 2
    saved_anchors = [saved["state"][i][ANCHOR] for g in saved["param_groups"] for i in g["params"]]
    assert all(torch.equal(a, b) for a, b in zip(anchors, saved_anchors))

    ours = [(e["step"], e["accepted"], e["values"]) for e in resumed["events"]]
    assert ours == [(e["step"], e["accepted"], e["values"]) for e in whole["events"] if e["step"] > 4] and ours
    (model_a, opt_a), (model_b, opt_b) = captured["whole"], captured["resumed"]
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(a, b)
    assert _effopt_state(opt_a)[0] == _effopt_state(opt_b)[0]
    assert [p["step"] for p in resumed["curve"]] == [6, 8]  # the resumed run's own points; step 0 was the first's
    assert resumed["curve"][-1]["metric"] == whole["curve"][-1]["metric"]


def test_gkd_trainer_with_effopt(task, tmp_path):
    """TRL's experimental GKDTrainer (SFT-based; on-policy with probability lmbda) builds effopt from the same class
    attribute and the callback made before it logs the events."""
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    from effopt.integrations import EffoptCallback, extrapolating
    from examples.trl_distill import student_of
    from reference.opd import make_probes

    tokenizer, split = task.tokenizer, task.data["opd"]
    prompts = split.prompt_ids[:64]
    answers = split.answer_ids[:64]

    def collate(rows):  # every prompt and answer has the same length: no padding
        idx = torch.tensor([r["i"] for r in rows])
        ids = torch.cat([prompts[idx], answers[idx]], 1)
        labels = ids.clone()
        labels[:, : prompts.shape[1]] = -100
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "labels": labels,
            "prompts": prompts[idx],
            "prompt_attention_mask": torch.ones_like(prompts[idx]),
        }

    from datasets import Dataset

    student = student_of(task)
    args = GKDConfig(
        str(tmp_path),
        max_steps=4,
        per_device_train_batch_size=16,
        learning_rate=LR,
        lr_scheduler_type="constant",
        lmbda=0.5,
        beta=1.0,
        max_new_tokens=answers.shape[1],
        bf16=False,
        gradient_checkpointing=False,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        logging_steps=10,
        seed=0,
        disable_tqdm=True,
        max_grad_norm=0.0,
    )
    trainer = GKDTrainer(
        model=student,
        teacher_model=task.teacher,
        args=args,
        processing_class=tokenizer,
        train_dataset=Dataset.from_dict({"i": list(range(64))}),
        data_collator=collate,
        callbacks=[EffoptCallback(make_probes(task, student)["loss"][0])],
    )
    trainer.optimizer_cls_and_kwargs = (extrapolating(torch.optim.AdamW), {"lr": LR})
    with MoveRecorder() as recorder:
        trainer.train()
    opt = unwrap_optimizer(trainer.optimizer)
    events = [(e["step"], e["accepted"]) for e in opt.events]
    assert [s for s, _ in events] == [1, 3] and recorder.checked == events and recorder.steps == 4
    assert effopt_lines(trainer.state.log_history) == events


def test_an_optimizer_the_trainer_would_not_extrapolate_with_is_refused(task, tmp_path):
    """The trainer builds its optimizer from `optimizers=` when given one, and ignores `optimizer_cls_and_kwargs`
    then: EffoptCallback refuses to start rather than train plain AdamW silently (DeepSpeed, which would replace or
    wrap it, is refused too: tests/test_integrations.py)."""
    from trl import DistillationTrainer

    from effopt.integrations import EffoptCallback, extrapolating
    from examples.trl_distill import distill_config, prompts_dataset, student_of

    student = student_of(task)
    args = distill_config(str(tmp_path), steps=2, batch_size=16, lr=LR, seed=0, max_completion_length=4)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=task.teacher,
        args=args,
        train_dataset=prompts_dataset(task, 2, 16, 0),
        processing_class=task.tokenizer,
        callbacks=[EffoptCallback(lambda: 0.0)],
        optimizers=(torch.optim.AdamW(student.parameters(), lr=LR), None),
    )
    trainer.optimizer_cls_and_kwargs = (extrapolating(torch.optim.AdamW), {"lr": LR})
    with pytest.raises(TypeError, match="expected an effopt.ExtrapolatingOptimizer.*AcceleratedOptimizer -> AdamW"):
        trainer.train()
