"""What reference/opd.py's loop minimises and measures: on-policy distillation's loss (`opd_loss`) and its RL
counterpart's (`grpo_loss`), a curve point's measures (`measures`, `retention`) and the probes it offers effopt
(`make_probes`), and the task instance they read (`Task`, which reference.opd.prepare builds). The losses take the
student's own sampled completions and return (loss to minimise, a float for the log). reference.opd re-exports every
name.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reference.addition import (
    Split,
    TeacherTargets,
    completion_mask,
    decode,
    exact_match,
    generate,
    log_probs,
    reverse_kl,
)
from reference.common import evaluating, group_advantages
from reference.optimizers import Probes


@dataclass
class Task:
    """What reference.opd.prepare builds: shared by every run of one (size, regime, task_seed, device); never modified by a run."""

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


def measures(task: Task, model) -> dict:
    """A curve point's measures at the model's weights (call in eval mode, without gradients): `metric`, greedy exact
    match on the eval split; `objective`, the reverse KL to the teacher teacher-forced on its answers to the eval
    prompts; and `retention`'s retained and drift."""
    return dict(
        metric=exact_match(model, task.data["eval"]),
        objective=task.eval_targets.reverse_kl(model),
        **retention(task, model),
    )


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
