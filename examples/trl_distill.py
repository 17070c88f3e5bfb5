"""effopt inside TRL's DistillationTrainer: on-policy distillation (OPD) of the OPD task's student, probed with a
teacher-forced reverse KL to the teacher on fixed answers.

    python -m examples.trl_distill [--size tiny] [--task-seed 0] [--steps N] [--optimizer effopt] [--out curve.json]

The task is reference/opd.py's near-teacher OPD (a shipped instance at the quick size: the same teacher, student start
and prompts), run by `trl.DistillationTrainer` instead of the project's own loop. effopt goes in with two lines:
`EffoptCallback(probe)` among the trainer's callbacks, and `extrapolating(torch.optim.AdamW)` as the class the trainer
builds its optimizer from (DistillationTrainer, like GRPOTrainer, takes no `optimizer_cls_and_kwargs` argument but,
like every Trainer, builds its optimizer from the attribute of that name). The lines between the "README" markers are
the README's snippet, word for word.

The probe: the mean per-token KL(student || teacher) over the full vocabulary, teacher-forced on the teacher's greedy
answers to the 128 fixed `probe_loss` prompts (`task.probe_targets.reverse_kl`, reference.opd.make_probes' "loss"):
deterministic, smooth, and about a fifth of a base step a call at the quick size (0.014 s against 0.068 s for a
DistillationTrainer step, one thread). The trainer's own evaluation loss
(`EffoptCallback(trainer=...)`, TrainerEvalLoss) is the other candidate and is not recommended here: DistillationTrainer
evaluates by *sampling* completions from the student (its `prediction_step` runs `_prepare_inputs`, which generates in
eval mode too), so two calls at the same weights disagree and the search compares noise, and each call pays for a
generation besides the two forwards.

`train(cfg, ...)` is the benchmark's entry point (the race's "trl-distill" task): it returns what `reference.opd.train`
returns, for the same `OPDConfig`, with the optimizer built by `reference.optimizers.build_optimizer` and handed over
as `optimizers=(opt, None)`, so every row runs the same code path as in the project's loop.

How it is the same task as reference.opd's (opd-near at the quick size): the same instance (teacher, student start),
the same prompts in the same order (the rows reference.opd draws, `torch.randint` with the run's seed, written into the
dataset in that order, which TRL reads unshuffled: `shuffle_dataset=False`), 64 prompts a step with one sample each,
one optimizer step per generation batch (DistillationTrainer generates once per optimizer step and never reuses a
batch across steps; `gradient_accumulation_steps=1`), completions of at most the answer's length (digits + 2 tokens,
"</s>" included) sampled at temperature 1 without top-k/top-p, beta=1 (the reverse KL) over the full vocabulary,
summed over the completion tokens up to and including "</s>" and divided by their count in the batch, AdamW (the
project's build_optimizer: betas 0.9/0.999, eps 1e-8, weight decay 0) at a constant lr (`lr_scheduler_type="constant"`,
no warm-up), no gradient clipping (`max_grad_norm=0`: reference.opd does not clip), fp32 (`bf16=False`), no gradient
checkpointing, and the same evaluation every `eval_every` steps (greedy exact match on the eval split, the objective,
retention), off the training clock.

How it still differs, and why:
- Samples. The global RNG is seeded with the run's seed just before the first rollout, so the first step samples
  exactly what reference.opd's first step samples; after it TRL draws from the same RNG to shuffle the rows of each
  generation batch (`shuffle_sequence_dict`, a `torch.randperm` per step), so from the second step on the samples are
  other draws from the same distribution. Same task, other noise: curves agree in distribution, not bit for bit.
- The loss kernel. TRL computes the divergence with its chunked kernel (`ChunkedDivergenceFunction`: the student's
  and teacher's last hidden states projected through their `lm_head`s tile by tile, the gradient written by hand);
  reference.opd takes log-softmax of the full logits and lets autograd differentiate. Same function, other rounding.
- Padding. Prompts all have the same length (no padding); completions that stop at "</s>" are right-padded with an
  attention mask of 0 in TRL, and with "<pad>" tokens seen by a causal model in reference.opd. Neither reaches a
  masked-in position (the model is causal), so the loss is the same up to rounding.
- Generation stops when every row has produced "</s>" in both loops; TRL passes its own GenerationConfig (the same
  sampling settings, `disable_compile=True`).
- Clock. train_seconds counts everything the Trainer does between its first step and the last evaluation apart from
  the evaluations (TRL's bookkeeping, the dataloader, the logging), so it is not the reference loop's seconds.
- The curve's `loss` is the Trainer's logged training loss (the mean over the steps since the previous point of the
  per-step reverse KL of the rollouts), which is what reference.opd's curve holds, computed by TRL's kernel.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from reference.common import ShowDefaults

if TYPE_CHECKING:  # TRL, transformers and datasets load in the functions, so that `--help` answers at once
    from datasets import Dataset
    from trl import DistillationConfig, DistillationTrainer

    from reference.opd import OPDConfig, Task


def prompts_dataset(task: Task, steps: int, batch_size: int, seed: int) -> Dataset:
    """The prompts reference.opd.train draws for a run of `steps` steps with `seed`, in its order: batch k is rows
    `k * batch_size ...` (TRL's "prompt" column, plain text; the tokenizer puts "<s>" first)."""
    from datasets import Dataset

    order = torch.Generator().manual_seed(seed)
    prompts = task.data["opd"].prompts
    rows = [torch.randint(len(prompts), (batch_size,), generator=order) for _ in range(steps)]
    return Dataset.from_dict({"prompt": [prompts[i] for i in torch.cat(rows).tolist()] if rows else []})


def distill_config(
    output_dir: str,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    max_completion_length: int,
    eval_every: int = 10,
    temperature: float = 1.0,
    device: str = "cpu",
    **overrides,
) -> DistillationConfig:
    """DistillationConfig for the OPD task as reference.opd runs it (see the module docstring); `overrides` win."""
    from trl import DistillationConfig

    settings = dict(
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=1,
        learning_rate=lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=0.0,  # reference.opd: no clip
        beta=1.0,
        temperature=temperature,
        top_k=0,
        top_p=1.0,
        max_completion_length=max_completion_length,
        shuffle_dataset=False,  # the dataset is already in reference.opd's order
        bf16=False,
        gradient_checkpointing=False,  # TRL's defaults are True; reference.opd runs fp32, no checkpointing
        logging_steps=eval_every,
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=torch.device(device).type == "cpu",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    settings.update(overrides)
    return DistillationConfig(output_dir, **settings)


def student_of(task: Task, device: str = "cpu") -> torch.nn.Module:
    from reference.opd import build_model

    student = build_model(task.student_spec, device)
    student.load_state_dict(task.student_state)
    return student.train()


def main(
    size: str = "tiny",
    task_seed: int = 0,
    steps: int | None = None,
    seed: int = 0,
    lr: float = 1e-5,
    output_dir: str | None = None,
    callbacks=(),
    **overrides,
) -> DistillationTrainer:
    """OPD of the task's student through DistillationTrainer with effopt's default; returns the trained trainer."""
    from trl import DistillationTrainer

    from effopt.integrations import EffoptCallback, extrapolating
    from reference.common import evaluating
    from reference.opd import SIZES, OPDConfig, prepare

    task = prepare(OPDConfig(size=size, regime="near-teacher", task_seed=task_seed), progress=False)
    size_ = SIZES[size]
    steps = 300 if steps is None else steps
    student = student_of(task)
    prompts = prompts_dataset(task, steps, size_.batch_size, seed)
    args = distill_config(
        output_dir or tempfile.mkdtemp(prefix="effopt-distill-"),
        steps=steps,
        batch_size=size_.batch_size,
        lr=lr,
        seed=seed,
        eval_every=size_.eval_every,
        max_completion_length=task.data["eval"].answer_ids.shape[1],
        **overrides,
    )

    def probe() -> float:  # KL(student || teacher) on the teacher's answers to fixed prompts: deterministic
        with evaluating(student):
            return task.probe_targets.reverse_kl(student)

    # README: distill
    trainer = DistillationTrainer(
        model=student,
        teacher_model=task.teacher,
        args=args,
        train_dataset=prompts,
        processing_class=task.tokenizer,
        callbacks=[EffoptCallback(probe)],
    )
    trainer.optimizer_cls_and_kwargs = (extrapolating(torch.optim.AdamW), {"lr": args.learning_rate})
    # README: end
    for callback in callbacks:
        trainer.add_callback(callback)
    trainer.train()
    return trainer


# ----------------------------------------------------------------------------------------------------------------------
# The benchmark's entry point: reference.opd.train's result, through DistillationTrainer


def _curve_callback(task: Task, student, optimizer, eval_every: int, seed: int):
    from transformers import TrainerCallback

    from reference.common import evaluating, set_seed, sync
    from reference.opd import measures

    class Curve(TrainerCallback):
        """Evaluates at step 0 and every `eval_every` optimizer steps (and the last), off the training clock, with the
        model's mode restored; seeds the RNG before the first rollout as reference.opd does; takes each point's
        training loss from the Trainer's log line at that step (asked for with `control.should_log`)."""

        def __init__(self):
            self.curve, self.eval_seconds, self.train_seconds = [], 0.0, 0.0
            self.started = None

        def evaluate(self, step: int) -> None:
            sync(task.device)
            start = time.perf_counter()
            with evaluating(student, optimizer):
                point = measures(task, student)
            sync(task.device)
            self.eval_seconds += time.perf_counter() - start
            self.curve.append(
                dict(step=step, train_seconds=self.train_seconds, eval_seconds=self.eval_seconds, loss=None, **point)
            )

        def on_train_begin(self, args, state, control, **kwargs):
            if state.global_step == 0:
                self.evaluate(0)
            self.started = time.perf_counter()
            self.base = self.eval_seconds  # evaluations from here on come off the clock

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 0:
                set_seed(seed)  # the first rollout samples what reference.opd's first does (see the docstring)

        def on_step_end(self, args, state, control, **kwargs):
            step = state.global_step
            if step % eval_every == 0 or step == state.max_steps:
                sync(task.device)
                self.train_seconds = time.perf_counter() - self.started - (self.eval_seconds - self.base)
                self.evaluate(step)
                control.should_log = True  # the point's loss: the Trainer's mean since its previous line

        def on_log(self, args, state, control, logs=None, **kwargs):
            point = self.curve[-1] if self.curve else None
            if logs and "loss" in logs and point and point["step"] == state.global_step and point["loss"] is None:
                point["loss"] = float(logs["loss"])

    return Curve()


def train(
    cfg: OPDConfig,
    make_optimizer: Callable | None = None,
    task: Task | None = None,
    progress: bool = False,
    output_dir: str | None = None,
    callbacks=(),
    resume_from_checkpoint: str | None = None,
    **overrides,
) -> dict:
    """Run OPD as `reference.opd.train(cfg, ...)` does, through `trl.DistillationTrainer`, and return the same dict:
    "config", "initial_metric", "final_metric", "teacher_metric", "curve" (step 0 included; each point step,
    train_seconds, eval_seconds, metric, loss, objective, retained, drift), "events", "train_seconds", "eval_seconds",
    "device". Only `cfg.loss == "full"` (DistillationTrainer's beta=1). `make_optimizer(model, probes)`, or by default
    `build_optimizer(cfg.optimizer, model, cfg.lr, probes)`; `overrides` go to the DistillationConfig (tests)."""
    from trl import DistillationTrainer

    from effopt import ExtrapolatingOptimizer
    from effopt.integrations import EffoptCallback
    from reference.common import run_result
    from reference.opd import make_probes, prepare
    from reference.optimizers import build_optimizer

    cfg = cfg.resolved()
    if cfg.loss != "full":
        raise ValueError(
            f"loss: DistillationTrainer trains the full-vocabulary reverse KL (beta=1), 'full'; got {cfg.loss!r}"
        )
    if task is None:
        task = prepare(cfg, progress=progress)
    elif (task.size, task.regime, task.task_seed, task.device) != (cfg.size, cfg.regime, cfg.task_seed, cfg.device):
        raise ValueError(
            f"task was prepared for size={task.size}, regime={task.regime}, task_seed={task.task_seed}, "
            f"device={task.device}; cfg asks for {cfg.size}, {cfg.regime}, {cfg.task_seed}, {cfg.device}"
        )
    student = student_of(task, cfg.device)
    probes = make_probes(task, student)
    opt = (
        build_optimizer(cfg.optimizer, student, cfg.lr, probes)
        if make_optimizer is None
        else make_optimizer(student, probes)
    )
    curve = _curve_callback(task, student, opt, cfg.eval_every, cfg.seed)
    extra = [EffoptCallback(opt.probe)] if isinstance(opt, ExtrapolatingOptimizer) else []  # events to the log
    with contextlib.ExitStack() as stack:
        folder = output_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="effopt-distill-"))
        args = distill_config(
            folder,
            steps=cfg.steps,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            seed=cfg.seed,
            eval_every=cfg.eval_every,
            temperature=cfg.temperature,
            device=cfg.device,
            max_completion_length=task.data["eval"].answer_ids.shape[1],
            disable_tqdm=not progress,
            **overrides,
        )
        trainer = DistillationTrainer(
            model=student,
            teacher_model=task.teacher,
            args=args,
            train_dataset=prompts_dataset(task, cfg.steps, cfg.batch_size, cfg.seed),
            processing_class=task.tokenizer,
            callbacks=[curve, *extra, *callbacks],
            optimizers=(opt, None),
        )
        if not progress:  # with disable_tqdm the Trainer prints every log line instead of a bar
            from transformers import PrinterCallback

            trainer.remove_callback(PrinterCallback)
        trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    result = run_result(
        cfg,
        curve.curve,
        opt,
        curve.train_seconds,
        cfg.device,
        eval_seconds=curve.eval_seconds,
        teacher_metric=task.teacher_metric,
    )
    result["log_history"] = trainer.state.log_history
    return result


# ----------------------------------------------------------------------------------------------------------------------
# Command line


def cli(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m examples.trl_distill", description=__doc__.split("\n\n")[0], formatter_class=ShowDefaults
    )
    parser.add_argument("--size", default="tiny", choices=("tiny", "quick", "gpu"), help="reference.opd.SIZES")
    parser.add_argument("--task-seed", type=int, default=0, help="the world: teacher and the student's start")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps")
    parser.add_argument("--seed", type=int, default=0, help="the run: prompt order and samples")
    parser.add_argument("--optimizer", default="effopt", help="a name in reference.optimizers.OPTIMIZERS")
    parser.add_argument("--lr", type=float, default=1e-5, help="learning rate (near-teacher's)")
    parser.add_argument("--out", default=None, help="write the result (reference.opd.train's format) as JSON here")
    parser.add_argument("--progress", action="store_true", help="the Trainer's progress bar")
    args = parser.parse_args(argv)

    from reference.common import write_json
    from reference.opd import OPDConfig

    cfg = OPDConfig(
        size=args.size,
        regime="near-teacher",
        optimizer=args.optimizer,
        lr=args.lr,
        steps=args.steps,
        seed=args.seed,
        task_seed=args.task_seed,
    )
    result = train(cfg, progress=args.progress)
    print(
        f"trl-distill {args.optimizer}: exact match {result['initial_metric']:.3f} -> {result['final_metric']:.3f} "
        f"in {args.steps} steps, {result['train_seconds']:.1f} s training + {result['eval_seconds']:.1f} s "
        f"evaluation, {len(result['events'])} events (teacher {result['teacher_metric']:.3f})"
    )
    if args.out:
        write_json(args.out, {k: v for k, v in result.items() if k != "log_history"})
    return result


if __name__ == "__main__":
    cli()
