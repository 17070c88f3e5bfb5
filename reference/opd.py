"""On-policy distillation (OPD) of a small causal LM, fully offline: the loop in which effopt's speed-up is measured.

The task is n-digit addition with exact-match answers: the prompt "<s>0427+5191=" asks for the sum written with
n + 1 digits, "05618</s>". A teacher (a Llama-architecture causal LM built from a config) is trained by supervised
learning until it is nearly always right; a smaller student is warmed up by supervised learning only until it reaches
a chosen accuracy, so that its samples are well formed but often wrong. OPD then trains the student on its own
samples: the teacher scores every sampled token and the loss is the per-token reverse KL, KL(student || teacher),
on the completion.

Two regimes, because they give opposite answers for extrapolation (measured on this task before):
  "near-teacher" (the default): the student is warmed up to about 60% and trained with a small learning rate, as in
      post-training, where AdamW needs the whole budget to gain; extrapolating along the update can save steps here.
  "far": the student is barely trained (about 5%) and AdamW runs at its best learning rate; little to gain.
At the quick size (task_seed 0) the teacher scores 99.2% and AdamW's 300 steps take the student from 58.8% to 78.5%
(near-teacher, lr 1e-5) and from 8.0% to 54.5% (far, lr 5e-4; 3e-4 and 1e-3 did worse), at about 0.065 s a step on
one CPU core. In near-teacher the first 30 steps gain most (58.8% -> 70.5%), then accuracy climbs steadily.

The RL counterpart on the same task and student, for comparing how the two move the weights (benchmarks/
foresight.py): `loss="grpo"` drops the teacher and trains on an exact-match reward, GRPO-style: `group_size` samples
per prompt, advantages standardised within each group, the same number of rollouts per step as OPD.

The world (sizes, tokenizer, data, models, generation, exact match, the supervised recipe) is reference/addition.py;
this module builds a task instance from it (`prepare`) and runs the loop, with the losses, measures and probes of
reference/opd_measures.py (which also holds the instance's type, `Task`).
The quick size's instances (task seeds 0-2: the teacher and the students' starts) are shipped in reference/shipped/
(reference.common.load_shipped), the same bits on every machine; anything else is built locally and cached on disk
under $EFFOPT_CACHE (reference.common.cache_dir): the data (a `datasets.DatasetDict`, by a hash of its config and
seed), the teacher and the student's start (state dicts, by a hash of the model config, the training recipe and the
seed). A missing, corrupt or mismatched cache entry is rebuilt with a warning. Nothing is fetched from a hub: the
tokenizer is a transformers fast tokenizer over a 16-token vocabulary, the models come from configs, and exact match
is the `evaluate` module shipped in reference/metrics/.

    python -m reference.opd --optimizer adamw --regime near-teacher --steps 300 --out curve.json

Seeds: `task_seed` fixes the world (data, teacher, the student's start) and `seed` fixes the run (which prompts, which
samples), so several runs share one teacher. Same config, same optimizer: the same curve on CPU.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from reference.addition import (  # noqa: F401 (the world's names, re-exported: opd.SIZES, opd.Split, ...)
    PAD,
    SFT,
    SIZES,
    VOCAB,
    Size,
    Split,
    TeacherTargets,
    _make_data,
    _make_skill_data,
    _supervised,
    build_model,
    build_tokenizer,
    completion_mask,
    decode,
    exact_match,
    generate,
    log_probs,
    reverse_kl,
)
from reference.common import (
    ShowDefaults,
    cached_dataset,
    cached_state_dict,
    evaluating,
    run_result,
    set_seed,
    show_progress,
    sync,
    write_json,
)
from reference.opd_measures import (  # noqa: F401 (re-exported: opd.measures, opd.make_probes, ...)
    PROBES,
    ROLLOUT_SAMPLES,
    Task,
    grpo_loss,
    make_probes,
    measures,
    opd_loss,
    retention,
)
from reference.optimizers import OPTIMIZERS, build_optimizer

# ----------------------------------------------------------------------------------------------------------------------
# Regimes


@dataclass(frozen=True)
class Regime:
    student_target: float  # dev accuracy at which the student's warm-up stops
    lr: float  # the default OPD learning rate (AdamW's best in "far", a post-training-sized one in "near-teacher")


REGIMES: dict[str, Regime] = {
    "near-teacher": Regime(student_target=0.6, lr=1e-5),
    "far": Regime(student_target=0.05, lr=5e-4),
}


@dataclass
class OPDConfig:
    """One OPD run. Fields left at None take the size's or the regime's default (`resolved()` fills them in)."""

    size: str = "quick"  # "tiny" (tests), "quick" (two CPU cores) or "gpu"; see SIZES
    regime: str = "near-teacher"  # "near-teacher" (capable student, small lr) or "far" (barely trained student)
    optimizer: str = "adamw"  # a name in reference.optimizers.OPTIMIZERS (used when train() gets no make_optimizer)
    lr: float | None = None  # None: the regime's lr (near-teacher 1e-5, far 5e-4)
    steps: int = 300  # OPD steps (optimizer steps; one rollout batch each)
    seed: int = 0  # the run: prompt order and the student's samples
    task_seed: int = 0  # the world: data, teacher and the student's start (cached per task_seed)
    loss: str = "full"  # "full": full-vocabulary reverse KL (the benchmark's); "sampled": REINFORCE on the
    #                     sampled-token reverse KL (EffOPD's code); "grpo": the RL counterpart, exact-match reward and
    #                     group-standardised advantages
    group_size: int = 8  # "grpo" only: samples per prompt; batch_size / group_size prompts a step
    batch_size: int | None = None  # prompts per step, one sample each; None: the size's (tiny 16, quick 64, gpu 256)
    eval_every: int | None = None  # steps between evaluations; None: the size's (tiny 2, quick 10, gpu 20)
    temperature: float = 1.0  # sampling temperature of the rollouts
    probe: str = "loss"  # the probe effopt's rows read (make_probes): "loss" (teacher-forced reverse KL, cheap),
    #                      "rollout" (reverse KL on the student's own samples, costly) or "accuracy" (sampled)
    device: str | None = None  # None: "cuda" when available, else "cpu"

    def resolved(self) -> OPDConfig:
        if self.size not in SIZES:
            raise ValueError(f"size: expected one of {', '.join(SIZES)}, got {self.size!r}")
        if self.regime not in REGIMES:
            raise ValueError(f"regime: expected one of {', '.join(REGIMES)}, got {self.regime!r}")
        if self.probe not in PROBES:
            raise ValueError(f"probe: expected one of {', '.join(PROBES)}, got {self.probe!r}")
        if self.loss not in ("sampled", "full", "grpo"):
            raise ValueError(f"loss: expected 'sampled', 'full' or 'grpo', got {self.loss!r}")
        if self.group_size < 2:
            raise ValueError(f"group_size: expected >= 2, got {self.group_size!r}")
        if self.steps < 0:
            raise ValueError(f"steps: expected >= 0, got {self.steps!r}")
        for name in ("batch_size", "eval_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)!r}")
        size, regime = SIZES[self.size], REGIMES[self.regime]
        resolved = replace(
            self,
            lr=regime.lr if self.lr is None else self.lr,
            batch_size=size.batch_size if self.batch_size is None else self.batch_size,
            eval_every=size.eval_every if self.eval_every is None else self.eval_every,
            device=self.device or ("cuda" if torch.cuda.is_available() else "cpu"),
        )
        if resolved.loss == "grpo" and resolved.batch_size % resolved.group_size:
            raise ValueError(
                f"batch_size: expected a multiple of group_size ({resolved.group_size}) for loss='grpo', "
                f"got {resolved.batch_size}"
            )
        return resolved


# ----------------------------------------------------------------------------------------------------------------------
# prepare(): data, teacher, the student's start, probe sets


def prepare(cfg: OPDConfig, progress: bool = True) -> Task:
    """Build or load (from the cache) the data, the teacher and the student's start for `cfg`; cheap when warm."""
    cfg = cfg.resolved()
    size, regime = SIZES[cfg.size], REGIMES[cfg.regime]
    device = torch.device(cfg.device)

    data_config = dict(task="addition", digits=size.digits, splits=size.splits, seed=cfg.task_seed, vocab=VOCAB)
    dataset = cached_dataset("opd-data", data_config, lambda: _make_data(size.digits, size.splits, cfg.task_seed))
    data = {name: Split.of(dataset[name], device) for name in size.splits}
    skill_config = dict(task="reverse", digits=size.digits, splits=size.skill_splits, seed=cfg.task_seed, vocab=VOCAB)
    skill = cached_dataset(
        "opd-skill", skill_config, lambda: _make_skill_data(size.digits, size.skill_splits, cfg.task_seed)
    )
    data.update({name: Split.of(skill[name], device) for name in size.skill_splits})

    def trained(kind: str, spec: dict, recipe: dict, seed_offset: int, skill_target: float | None = None):
        config = dict(data=data_config, model=spec, recipe=recipe, sft=SFT, seed=cfg.task_seed)
        if skill_target is not None:
            config.update(skill=skill_config, skill_target=skill_target)

        def build():
            set_seed(cfg.task_seed + seed_offset)
            model = build_model(spec, device)
            train = data["train"]
            if skill_target is not None:  # the skill first, then addition with the skill mixed in (a third)
                _supervised(
                    model,
                    data["skill_train"],
                    data["skill_dev"],
                    seed=cfg.task_seed + seed_offset,
                    desc=f"teaching the {kind} the retained skill",
                    progress=progress,
                    **dict(recipe, target=skill_target),
                )
                train = train + data["skill_train"]
            return _supervised(
                model,
                train,
                data["dev"],
                seed=cfg.task_seed + seed_offset,
                desc=f"training the {kind}",
                progress=progress,
                **recipe,
            )

        def check(state_dict):
            build_model(spec).load_state_dict(state_dict)  # raises on missing, unexpected or misshapen tensors

        return cached_state_dict(f"opd-{kind}", config, build, check=check)

    teacher_recipe = dict(
        steps=size.teacher_steps, batch=size.teacher_batch, target=size.teacher_target, check_every=size.check_every
    )
    student_recipe = dict(
        steps=size.student_max_steps,
        batch=size.student_batch,
        target=regime.student_target,
        check_every=size.student_check_every,
    )
    teacher = build_model(size.teacher, device)
    teacher.load_state_dict(trained("teacher", size.teacher, teacher_recipe, 1))
    teacher.eval().requires_grad_(False)
    student_state = trained("student", size.student, student_recipe, 2, skill_target=0.98)

    with torch.no_grad():
        probe_targets = TeacherTargets.of(teacher, data["probe_loss"])
        eval_targets = TeacherTargets.of(teacher, data["eval"])
        teacher_metric = exact_match(teacher, data["eval"])
        start = build_model(size.student, device)
        start.load_state_dict(student_state)
        start.eval()
        skill_start_logp = log_probs(start, data["skill_eval"].prompt_ids, data["skill_eval"].answer_ids)
        skill_targets = TeacherTargets.of(start, data["skill_dev"])
    return Task(
        cfg.size,
        cfg.regime,
        cfg.task_seed,
        cfg.device,
        build_tokenizer(),
        data,
        teacher,
        size.student,
        student_state,
        teacher_metric,
        probe_targets,
        eval_targets,
        skill_start_logp,
        skill_targets,
    )


# ----------------------------------------------------------------------------------------------------------------------
# The OPD loop (its losses, measures and probes: reference/opd_measures.py)


def train(
    cfg: OPDConfig, make_optimizer: Callable | None = None, task: Task | None = None, progress: bool = True
) -> dict:
    """Run OPD for `cfg.steps` steps and return the learning curve.

    make_optimizer(model, probes) -> torch.optim.Optimizer; None: build_optimizer(cfg.optimizer, model, lr, probes).
    Returns {"config", "initial_metric", "final_metric", "teacher_metric", "curve", "events", "train_seconds",
    "eval_seconds", "device"}. The metric is greedy exact match on the eval split (higher is better). Each curve point
    (step 0 included) holds step, train_seconds and eval_seconds (cumulative; probe calls count as training), metric,
    loss (the mean per-token reverse KL of the rollouts since the previous point, or for "grpo" their error rate; None
    at step 0), objective (the reverse KL to the teacher, teacher-forced on its greedy answers to the eval prompts,
    which no probe sees; lower is better) and `retention`'s retained and drift.
    """
    from tqdm.auto import tqdm

    cfg = cfg.resolved()
    if task is None:
        task = prepare(cfg, progress=progress)
    elif (task.size, task.regime, task.task_seed, task.device) != (cfg.size, cfg.regime, cfg.task_seed, cfg.device):
        raise ValueError(
            f"task was prepared for size={task.size}, regime={task.regime}, task_seed={task.task_seed}, "
            f"device={task.device}; cfg asks for {cfg.size}, {cfg.regime}, {cfg.task_seed}, {cfg.device}"
        )

    student = build_model(task.student_spec, cfg.device)
    student.load_state_dict(task.student_state)
    student.train()
    probes = make_probes(task, student)
    probes["loss"] = probes[cfg.probe]  # what effopt's rows read (effopt-paper keeps "accuracy")
    if make_optimizer is None:
        opt = build_optimizer(cfg.optimizer, student, cfg.lr, probes)
    else:
        opt = make_optimizer(student, probes)

    set_seed(cfg.seed)  # the rollouts sample from the global RNG
    order = torch.Generator().manual_seed(cfg.seed)
    prompts, new_tokens = task.data["opd"].prompt_ids, task.data["eval"].answer_ids.shape[1]
    group = cfg.group_size if cfg.loss == "grpo" else 1  # samples per prompt
    train_seconds = eval_seconds = 0.0
    losses: list[float] = []
    curve = []

    def evaluate(step: int) -> None:
        nonlocal eval_seconds
        sync(cfg.device)
        start = time.perf_counter()
        with evaluating(student, opt):
            point = measures(task, student)
        sync(cfg.device)
        eval_seconds += time.perf_counter() - start
        loss = sum(losses) / len(losses) if losses else None
        losses.clear()
        curve.append(dict(step=step, train_seconds=train_seconds, eval_seconds=eval_seconds, loss=loss, **point))

    evaluate(0)
    bar = tqdm(range(1, cfg.steps + 1), desc=f"opd {cfg.regime} {cfg.optimizer}", disable=not progress)
    bar.set_postfix(metric=f"{curve[-1]['metric']:.3f}")
    for step in bar:
        sync(cfg.device)
        start = time.perf_counter()
        rows = torch.randint(len(prompts), (cfg.batch_size // group,), generator=order).repeat_interleave(group)
        prompt_ids = prompts[rows.to(prompts.device)]
        completion = generate(student, prompt_ids, new_tokens, sample=True, temperature=cfg.temperature)
        if cfg.loss == "grpo":
            answers = [task.data["opd"].answers[i] for i in rows.tolist()]
            loss, kl = grpo_loss(student, prompt_ids, completion, answers, group)
        else:
            loss, kl = opd_loss(student, task.teacher, prompt_ids, completion, cfg.loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(cfg.device)
        train_seconds += time.perf_counter() - start
        losses.append(kl)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            evaluate(step)
            show_progress(bar, curve[-1], opt)
    bar.close()
    return run_result(
        cfg, curve, opt, train_seconds, cfg.device, eval_seconds=eval_seconds, teacher_metric=task.teacher_metric
    )


# ----------------------------------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m reference.opd", description=__doc__.split("\n\n")[0], formatter_class=ShowDefaults
    )
    parser.add_argument("--optimizer", default="adamw", choices=OPTIMIZERS, help="reference.optimizers.OPTIMIZERS")
    parser.add_argument("--size", default="quick", choices=tuple(SIZES), help="models, data and batch (SIZES)")
    parser.add_argument("--regime", default="near-teacher", choices=tuple(REGIMES), help="the student's start")
    parser.add_argument("--lr", type=float, default=None, help="None: the regime's (near-teacher 1e-5, far 5e-4)")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps")
    parser.add_argument("--seed", type=int, default=0, help="the run: prompt order and samples")
    parser.add_argument("--task-seed", type=int, default=0, help="the world: data, teacher, the student's start")
    parser.add_argument("--loss", default="full", choices=("sampled", "full", "grpo"), help="see OPDConfig.loss")
    parser.add_argument("--probe", default="loss", choices=PROBES, help="the probe effopt reads (OPDConfig.probe)")
    parser.add_argument("--group-size", type=int, default=8, help="grpo: samples per prompt")
    parser.add_argument("--batch-size", type=int, default=None, help="None: the size's")
    parser.add_argument("--eval-every", type=int, default=None, help="None: the size's")
    parser.add_argument("--device", default=None, help="None: cuda when available, else cpu")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    cfg = OPDConfig(
        size=args.size,
        regime=args.regime,
        optimizer=args.optimizer,
        lr=args.lr,
        steps=args.steps,
        seed=args.seed,
        task_seed=args.task_seed,
        loss=args.loss,
        probe=args.probe,
        group_size=args.group_size,
        batch_size=args.batch_size,
        eval_every=args.eval_every,
        device=args.device,
    )
    result = train(cfg, progress=not args.no_progress)
    print(
        f"{cfg.regime} {cfg.optimizer}: exact match {result['initial_metric']:.3f} -> {result['final_metric']:.3f} "
        f"in {cfg.steps} steps, {result['train_seconds']:.1f} s training + {result['eval_seconds']:.1f} s evaluation "
        f"(teacher {result['teacher_metric']:.3f}, device {result['device']})"
    )
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
