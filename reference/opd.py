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
this module builds a task instance from it (`prepare`) and runs the loop. The quick size's instances (task seeds 0-2:
the teacher and the students' starts) are shipped in reference/shipped/ (reference.common.load_shipped), the same
bits on every machine; anything else is built locally and cached on disk under $EFFOPT_CACHE
(reference.common.cache_dir): the data (a `datasets.DatasetDict`, by a hash of its config and seed), the teacher and
the student's start (state dicts, by a hash of the model config, the training recipe and the seed). A missing, corrupt
or mismatched cache entry is rebuilt with a warning. Nothing is fetched from a hub: the tokenizer is a transformers
fast tokenizer over a 16-token vocabulary, the models come from configs, and exact match is the `evaluate` module
shipped in reference/metrics/.

    python -m reference.opd --optimizer adamw --regime near-teacher --steps 300 --out curve.json

Seeds: `task_seed` fixes the world (data, teacher, the student's start) and `seed` fixes the run (which prompts, which
samples), so several runs share one teacher. Same config, same optimizer: the same curve on CPU.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from typing import Callable

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
    cached_dataset,
    cached_state_dict,
    evaluating,
    group_advantages,
    last_event,
    ShowDefaults,
    run_result,
    set_seed,
    sync,
)
from reference.common import write_json
from reference.optimizers import OPTIMIZERS, Probes, build_optimizer


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
            raise ValueError(f"batch_size: expected a multiple of group_size ({resolved.group_size}) for loss='grpo', "
                             f"got {resolved.batch_size}")
        return resolved


# ----------------------------------------------------------------------------------------------------------------------
# prepare(): data, teacher, the student's start, probe sets


@dataclass
class Task:
    """What `prepare` builds: shared by every run of one (size, regime, task_seed, device); never modified by a run."""

    size: str
    regime: str
    task_seed: int
    device: str
    tokenizer: object
    data: dict[str, Split]  # the addition splits and the retained skill's (skill_*)
    teacher: torch.nn.Module  # frozen, eval mode
    student_spec: dict
    student_state: dict  # the student's start (CPU tensors)
    teacher_metric: float  # the teacher's greedy exact match on the eval split
    probe_targets: TeacherTargets  # the loss probe's fixed sequences (probe_loss prompts)
    eval_targets: TeacherTargets  # the objective's (eval prompts: held out from every probe)
    skill_start_logp: torch.Tensor  # the student's start's log-probs on the skill_eval answers, (N, T, V)
    skill_targets: TeacherTargets  # the student's start's own greedy answers on skill_dev: what the guard's drift reads


def prepare(cfg: OPDConfig, progress: bool = True) -> Task:
    """Build or load (from the cache) the data, the teacher and the student's start for `cfg`; cheap when warm."""
    cfg = cfg.resolved()
    size, regime = SIZES[cfg.size], REGIMES[cfg.regime]
    device = torch.device(cfg.device)

    data_config = dict(task="addition", digits=size.digits, splits=size.splits, seed=cfg.task_seed, vocab=VOCAB)
    dataset = cached_dataset("opd-data", data_config, lambda: _make_data(size.digits, size.splits, cfg.task_seed))
    data = {name: Split.of(dataset[name], device) for name in size.splits}
    skill_config = dict(task="reverse", digits=size.digits, splits=size.skill_splits, seed=cfg.task_seed, vocab=VOCAB)
    skill = cached_dataset("opd-skill", skill_config,
                           lambda: _make_skill_data(size.digits, size.skill_splits, cfg.task_seed))
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
                _supervised(model, data["skill_train"], data["skill_dev"], seed=cfg.task_seed + seed_offset,
                            desc=f"teaching the {kind} the retained skill", progress=progress,
                            **dict(recipe, target=skill_target))
                train = train + data["skill_train"]
            return _supervised(model, train, data["dev"], seed=cfg.task_seed + seed_offset,
                               desc=f"training the {kind}", progress=progress, **recipe)

        def check(state_dict):
            build_model(spec).load_state_dict(state_dict)  # raises on missing, unexpected or misshapen tensors

        return cached_state_dict(f"opd-{kind}", config, build, check=check)

    teacher_recipe = dict(steps=size.teacher_steps, batch=size.teacher_batch, target=size.teacher_target,
                          check_every=size.check_every)
    student_recipe = dict(steps=size.student_max_steps, batch=size.student_batch, target=regime.student_target,
                          check_every=size.student_check_every)
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
    return Task(cfg.size, cfg.regime, cfg.task_seed, cfg.device, build_tokenizer(), data, teacher, size.student,
                student_state, teacher_metric, probe_targets, eval_targets, skill_start_logp, skill_targets)


def measures(task: Task, model) -> dict:
    """A curve point's measures at the model's weights (call in eval mode, without gradients): `metric`, greedy exact
    match on the eval split; `objective`, the reverse KL to the teacher teacher-forced on its answers to the eval
    prompts; and `retention`'s retained and drift."""
    return dict(metric=exact_match(model, task.data["eval"]), objective=task.eval_targets.reverse_kl(model),
                **retention(task, model))


def retention(task: Task, model) -> dict:
    """What the model kept of the skill that post-training does not train (call in eval mode, without gradients):
    `retained`, greedy exact match on skill_eval, and `drift`, the mean per-token KL(model || start) teacher-forced
    on the skill_eval answers: a smooth measure of how far its behaviour there moved from the start."""
    split = task.data["skill_eval"]
    drift = reverse_kl(log_probs(model, split.prompt_ids, split.answer_ids), task.skill_start_logp).mean()
    return {"retained": exact_match(model, split), "drift": float(drift)}


# ----------------------------------------------------------------------------------------------------------------------
# Probes for the wrapper


PROBES = ("loss", "rollout", "accuracy")  #: the probes an OPDConfig may hand effopt (see make_probes)
ROLLOUT_SAMPLES = 4  #: the rollout probe's samples per probe_loss prompt (512 rollouts at the quick size: 8 batches)


def make_probes(task: Task, student, seed: int = 1234) -> Probes:
    """{"loss": (validation reverse KL, "min"), "rollout": (reverse KL on the student's own samples, "min"),
    "accuracy": (sampled validation accuracy, "max"), "drift": (KL to the start on the retained skill, "min")}.

    loss: KL(student || teacher) over the full vocabulary, teacher-forced on the fixed probe sequences (the teacher's
        greedy answers to the probe_loss prompts), averaged over their tokens: cheap, smooth, deterministic.
    rollout: the on-policy form of "loss": ROLLOUT_SAMPLES samples at temperature 1 per probe_loss prompt (512
        rollouts at the quick size, eight training batches' worth), then the full-vocabulary reverse KL to the teacher
        on them, as the training loss measures it. The samples come from a forked RNG seeded with `seed` (common
        random numbers: every candidate point is read on the same draws), so it is deterministic given the weights
        and smooth enough to search along. It costs several base steps a call, as a held-out rollout evaluation does.
    accuracy: exact match of one sample per probe_accuracy prompt (about 50) at temperature 1, the paper's signal:
        noisy. Its samples come from a forked RNG seeded with `seed`: deterministic given the weights, and the
        training RNG stream is left untouched.
    drift: KL(student || start) on the retained skill, teacher-forced on the start's own greedy answers to the
        skill_dev prompts (disjoint from skill_eval, which `retention` reads): a guard's probe (effopt.Guard).
    Both run in eval mode and restore the mode they found.
    """
    cuda = [torch.device(task.device).index or 0] if torch.device(task.device).type == "cuda" else []

    def loss() -> float:
        with evaluating(student):
            return task.probe_targets.reverse_kl(student)

    def rollout() -> float:
        prompts = task.probe_targets.prompt_ids.repeat_interleave(ROLLOUT_SAMPLES, 0)
        new_tokens = task.probe_targets.completion.shape[1]
        with evaluating(student), torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            completion = generate(student, prompts, new_tokens, sample=True)
            return opd_loss(student, task.teacher, prompts, completion, "full")[1]

    def accuracy() -> float:
        with evaluating(student), torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            return exact_match(student, task.data["probe_accuracy"], sample=True)

    def drift() -> float:
        with evaluating(student):
            return task.skill_targets.reverse_kl(student)

    return {"loss": (loss, "min"), "rollout": (rollout, "min"), "accuracy": (accuracy, "max"), "drift": (drift, "min")}


# ----------------------------------------------------------------------------------------------------------------------
# The OPD loop


def opd_loss(student, teacher, prompt_ids: torch.Tensor, completion: torch.Tensor, form: str):
    """(loss to minimise, mean per-token reverse KL for the log) on the student's own sampled completions.

    sampled: the per-token advantage A_t = -(log p_s(a_t) - log p_t(a_t)), detached, times log p_s(a_t): the
        score-function (REINFORCE) form of the sampled-token reverse KL estimator, as in the EffOPD code. That code
        feeds it to a PPO-clipped surrogate; with one update per rollout the ratio is 1 at the update, the clip never
        binds and the surrogate's gradient is exactly this one, so the plain form is used.
    full: sum_v p_s(v) (log p_s(v) - log p_t(v)) at each position, differentiated through the student's distribution.
    Both average over completion tokens (up to and including "</s>").
    """
    mask = completion_mask(completion)
    tokens = mask.sum().clamp_min(1.0)
    student_logp = log_probs(student, prompt_ids, completion)
    with torch.no_grad():
        teacher_logp = log_probs(teacher, prompt_ids, completion)
    student_token = student_logp.gather(-1, completion.unsqueeze(-1)).squeeze(-1)
    teacher_token = teacher_logp.gather(-1, completion.unsqueeze(-1)).squeeze(-1)
    log_ratio = (student_token - teacher_token) * mask
    if form == "sampled":
        advantage = -log_ratio.detach()
        return -(advantage * student_token * mask).sum() / tokens, float(log_ratio.detach().sum() / tokens)
    kl = (reverse_kl(student_logp, teacher_logp) * mask).sum() / tokens
    return kl, float(kl.detach())


def grpo_loss(student, prompt_ids: torch.Tensor, completion: torch.Tensor, answers: list[str], group_size: int):
    """(loss to minimise, the rollouts' error rate for the log) for the RL counterpart of OPD.

    Reward 1 for an exactly right answer, else 0; advantages standardised within each group of `group_size` samples
    of one prompt (rows come grouped); the policy gradient of one update per rollout (ratio 1, so no clipping acts),
    averaged over completion tokens like the OPD losses.
    """
    mask = completion_mask(completion)
    reward = torch.tensor([float(p == a) for p, a in zip(decode(completion), answers)], device=completion.device)
    advantage = group_advantages(reward.view(-1, group_size)).flatten()
    student_token = log_probs(student, prompt_ids, completion).gather(-1, completion.unsqueeze(-1)).squeeze(-1)
    loss = -(advantage[:, None] * student_token * mask).sum() / mask.sum().clamp_min(1.0)
    return loss, 1.0 - float(reward.mean())


def train(cfg: OPDConfig, make_optimizer: Callable | None = None, task: Task | None = None,
          progress: bool = True) -> dict:
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
        raise ValueError(f"task was prepared for size={task.size}, regime={task.regime}, task_seed={task.task_seed}, "
                         f"device={task.device}; cfg asks for {cfg.size}, {cfg.regime}, {cfg.task_seed}, {cfg.device}")

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
            event = {"event": last_event(opt)} if last_event(opt) else {}
            bar.set_postfix(metric=f"{curve[-1]['metric']:.3f}", kl=f"{curve[-1]['loss']:.4f}",
                            retained=f"{curve[-1]['retained']:.3f}", **event)
    bar.close()
    return run_result(cfg, curve, opt, train_seconds, cfg.device, eval_seconds=eval_seconds,
                      teacher_metric=task.teacher_metric)


# ----------------------------------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m reference.opd", description=__doc__.split("\n\n")[0],
                                     formatter_class=ShowDefaults)
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
    cfg = OPDConfig(size=args.size, regime=args.regime, optimizer=args.optimizer, lr=args.lr, steps=args.steps,
                    seed=args.seed, task_seed=args.task_seed, loss=args.loss, probe=args.probe,
                    group_size=args.group_size,
                    batch_size=args.batch_size, eval_every=args.eval_every, device=args.device)
    result = train(cfg, progress=not args.no_progress)
    print(f"{cfg.regime} {cfg.optimizer}: exact match {result['initial_metric']:.3f} -> {result['final_metric']:.3f} "
          f"in {cfg.steps} steps, {result['train_seconds']:.1f} s training + {result['eval_seconds']:.1f} s evaluation "
          f"(teacher {result['teacher_metric']:.3f}, device {result['device']})")
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
