"""EchoDistill, small and offline: a student that hears noisy audio learns to answer as its frozen self does on clean.

    python -m reference.echodistill --optimizer adamw --steps 200 --out curve.json

The pieces (1 and 2 live in reference/audio_lm.py, the rest here, top to bottom):
1. data: synthetic audio questions (reference/audio.py), one noisy version per SNR paired with each clean clip, turned
   into log-mel features and token ids once (the quick size's are shipped in reference/shipped/);
2. model: log-mel -> a small conv encoder -> audio embeddings, followed by the question's tokens, fed to a tiny
   transformers causal LM through `inputs_embeds`; trained on clean audio (cached), it is both the frozen clean-audio
   teacher and the student's starting point;
3. the EchoDistill step (`echo_step`): the student samples K answers from noisy audio; task reward; group-normalised
   advantages; a clipped policy loss whose old policy is the clean teacher; plus KL(teacher || student) teacher-forced
   on the teacher's clean answer;
4. metrics, all exact match (reference/metrics/exact_match): Acc (noisy prediction vs target), Noisy (noisy prediction
   vs the clean teacher's answer), GSR (the model's own noisy vs clean answers), per SNR; strong noise is -10 dB.

Choices the paper leaves open, made here:
- The old policy in the ratio is the clean teacher's length-normalised log-prob of each candidate. A wrong candidate
  that the teacher finds very unlikely gets a huge ratio; with a negative advantage the PPO surrogate would be
  unbounded, so the ratio is dual-clipped (Ye et al. 2020): the surrogate of a negative advantage is at least
  `dual_clip * advantage`.
- Rewards: +1 for the target choice, -1 for another offered choice (exactly "<letter> <word>"), otherwise -1 + the
  word-overlap F1 with the target: partial credit in [-1, 0], between a wrong choice and the right one.
- Bonus "published": s = exp(-KL) per prompt, beta * s added to the correct answers, rewards clipped to [-1, 2]. With
  only +1/-1 rewards a group holds two values, 1 + beta * s and -1: an increasing affine image of {1, -1}, and group
  normalisation ((r - mean) / std) is blind to such maps, so the bonus cancels exactly; it acts only when partial
  credit adds a third value. Bonus "per-candidate" adds beta * exp(the clean teacher's mean log-prob of the candidate) to every
  candidate: it differs between candidates, so it survives normalisation and ranks them (also clipped to [-1, 2]).
- Ablations: "grpo" is plain on-policy GRPO with the task reward (ratio against the student's own detached log-probs,
  no teacher anywhere); "distill" is the KL term alone; "full" is both, with the teacher ratio and the bonus.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import time
from dataclasses import dataclass

import torch

from reference import audio
from reference.audio_lm import (  # noqa: F401 (the world's names, re-exported: echodistill.SIZES, ...)
    DATA_VERSION,
    FEATURES,
    MODEL_VERSION,
    PRETRAIN,
    SIZES,
    VOCAB,
    AudioLM,
    answer_mask,
    build_data,
    decode,
    kl_teacher_student,
    pretrain,
    sequence_logprob,
)
from reference.common import (
    ShowDefaults,
    cache_dir,
    cached_state_dict,
    evaluating,
    group_advantages,
    last_event,
    load_metric,
    run_result,
    sync,
    write_json,
)
from reference.optimizers import build_optimizer


@dataclass
class EchoConfig:
    size: str = "quick"  # "tiny" | "quick" | "gpu": model, data and pre-training sizes (SIZES)
    method: str = "full"  # "full" | "grpo" (policy loss, task reward) | "distill" (KL term only)
    bonus: str = "per-candidate"  # "per-candidate" | "published" | "none": consistency bonus of "full"
    optimizer: str = "adamw"  # a name in reference.optimizers.OPTIMIZERS, used when train() gets no make_optimizer
    lr: float | None = None  # learning rate; None = SIZES[size]["lr"]
    steps: int = 150  # optimizer steps (the quick benchmark's)
    seed: int = 0  # the post-training run: batches and sampled answers
    model_seed: int = 0  # the clean model's initialisation and pre-training (part of its cache key)
    batch_size: int = 16  # prompts (clip, SNR) per step
    group_size: int = 8  # K sampled answers per prompt
    temperature: float = 1.0  # sampling temperature of the K answers
    beta: float = 0.5  # weight of the consistency bonus
    clip_eps: float = 0.2  # PPO clipping of the ratio to [1 - eps, 1 + eps]
    dual_clip: float = 3.0  # surrogate of a negative advantage A is at least dual_clip * A
    lambda_policy: float = 1.0  # weight of the policy loss
    lambda_distill: float = 1.0  # weight of KL(teacher || student)
    max_grad_norm: float = 1.0  # gradient clipping before the optimizer step; 0 = none
    train_snrs: tuple = audio.SNRS  # SNRs (dB) of the noisy training audio, drawn uniformly
    strong_snr: int = -10  # the "strong noise" SNR of the curve, the probes and "metric"
    metric: str = "noisy"  # the curve's "metric" at strong noise: "noisy" (the benchmark's) | "gsr" | "acc" (GSR can
    #                        be gamed: see make_probes)
    eval_every: int = 15  # steps between curve points (the benchmark's)
    final_all_snrs: bool = True  # evaluate every SNR at the end (and at step 0) into "per_snr"
    device: str = "auto"  # "auto" = cuda when available, else cpu


@dataclass
class Task:
    """What every run of one size shares: the data (on `device`), the frozen clean teacher and its clean answers."""

    size: str
    model_seed: int
    device: str
    teacher: AudioLM
    splits: dict  # name -> dict of tensors; each split also holds "teacher_answer", "teacher_text", "teacher_logprobs"
    initial_per_snr: dict | None = None  # filled by the first train() that evaluates every SNR


def _device(cfg: EchoConfig) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device


def prepare(cfg: EchoConfig) -> Task:
    """Data and the trained clean model, both cached on disk (reference.common.cached_state_dict): cheap when warm."""
    if cfg.size not in SIZES:
        raise ValueError(f"size: expected one of {', '.join(SIZES)}, got {cfg.size!r}")
    s = SIZES[cfg.size]
    data_key = {k: s[k] for k in ("n_pretrain", "n_train", "n_probe", "n_eval")}
    data_key |= {"features": FEATURES, "version": DATA_VERSION}

    def build(what, make):  # the cold path only: minutes at quick size, then cached
        print(f"echodistill: building the {cfg.size} {what} (cached in {cache_dir()})", flush=True)
        return make()

    data = cached_state_dict(
        "echodistill-data", data_key | {"vocab": VOCAB}, lambda: build("data", lambda: build_data(cfg.size))
    )
    data = {
        name: {k: v.float() / 255 if torch.is_tensor(v) and v.dtype == torch.uint8 else v for k, v in split.items()}
        for name, split in data.items()
    }
    model_key = {k: s[k] for k in ("d_model", "layers", "heads", "ffn", "width", "n_pretrain", "pretrain_steps")}
    model_key |= {
        "features": FEATURES,
        "vocab": VOCAB,
        "pretrain": PRETRAIN,
        "model_seed": cfg.model_seed,
        "version": (DATA_VERSION, MODEL_VERSION),
    }
    device, teacher = _device(cfg), AudioLM(cfg.size)
    teacher.load_state_dict(
        cached_state_dict(
            "echodistill-model",
            model_key,
            lambda: build("clean model", lambda: pretrain(cfg.size, data, cfg.model_seed, device)),
        )
    )
    teacher.to(device).eval().requires_grad_(False)
    splits = {}
    for name in ("train", "probe", "eval"):
        split = {k: v.to(device) if torch.is_tensor(v) else v for k, v in data[name].items()}
        with torch.no_grad():
            answer = teacher.generate(split["clean"], split["question"])  # greedy, [N, 1, A]
            split["teacher_logprobs"] = teacher.answer_logprobs(split["clean"], split["question"], answer)[:, 0]
        split["teacher_answer"], split["teacher_text"] = answer[:, 0], decode(answer)
        splits[name] = split
    return Task(cfg.size, cfg.model_seed, device, teacher, splits)


# ------------------------------------------------------------------------------------------- rewards, step
def task_reward(text: str, target: str, offered: list[str]) -> float:
    """+1 for the target choice, -1 for another offered choice ("<letter> <word>" exactly), else partial credit:
    -1 + the word-overlap F1 with the target, in [-1, 0] ("B" alone, or a letter with the wrong word)."""
    if text in offered:
        return 1.0 if text == target else -1.0
    words, target_words = text.split(), target.split()
    common = sum(min(words.count(w), target_words.count(w)) for w in set(words))
    f1 = 2 * common / (len(words) + len(target_words)) if common else 0.0
    return -1.0 + f1


def shaped_reward(reward: torch.Tensor, cfg: EchoConfig, kl: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """The task rewards [B, K] plus the consistency bonus, clipped to [-1, 2]. "published": beta * exp(-KL) per prompt
    (kl: [B]) on correct answers only, which group normalisation cancels when rewards are +1/-1; "per-candidate":
    beta * the clean teacher's geometric-mean token probability of each candidate (old: its mean log-prob, [B, K])."""
    if cfg.bonus == "published":
        reward = torch.where(reward == 1.0, reward + cfg.beta * torch.exp(-kl)[:, None], reward)
    elif cfg.bonus == "per-candidate":
        reward = reward + cfg.beta * old.exp()
    return reward.clamp(-1.0, 2.0)


def echo_step(student: AudioLM, teacher: AudioLM, task: Task, cfg: EchoConfig, generator: torch.Generator):
    """One EchoDistill loss on a batch of (clip, SNR) prompts; returns (loss, mean task reward; None for distill)."""
    split, device = task.splits["train"], task.device
    idx = torch.randint(len(split["answer"]), (cfg.batch_size,), generator=generator).to(device)
    snr_pick = torch.tensor([audio.SNRS.index(s) for s in cfg.train_snrs])
    snr = snr_pick[torch.randint(len(snr_pick), (cfg.batch_size,), generator=generator)].to(device)
    noisy, clean, question = split["noisy"][idx, snr], split["clean"][idx], split["question"][idx]
    t_answer, t_logprobs = split["teacher_answer"][idx], split["teacher_logprobs"][idx]
    if cfg.method == "distill":
        s_logprobs = student.answer_logprobs(noisy, question, t_answer[:, None])[:, 0]
        return cfg.lambda_distill * kl_teacher_student(t_logprobs, s_logprobs, t_answer).mean(), None

    K = cfg.group_size
    candidates = student.generate(noisy, question, K, generator, cfg.temperature)  # [B, K, A]
    texts = decode(candidates)
    reward = torch.tensor(
        [
            task_reward(texts[b * K + k], split["answer_text"][i], split["offered"][i])
            for b, i in enumerate(idx.tolist())
            for k in range(K)
        ],
        device=device,
    ).view(-1, K)
    task_mean = reward.mean().item()
    answers = torch.cat([candidates, t_answer[:, None]], dim=1) if cfg.method == "full" else candidates
    s_logprobs = student.answer_logprobs(noisy, question, answers)  # the teacher's answer rides along as answer K
    s_seq = sequence_logprob(s_logprobs[:, :K], candidates)
    loss = 0.0
    if cfg.method == "full":
        with torch.no_grad():
            old = sequence_logprob(teacher.answer_logprobs(clean, question, candidates), candidates)
        kl = kl_teacher_student(t_logprobs, s_logprobs[:, K], t_answer)
        reward = shaped_reward(reward, cfg, kl.detach(), old)
        loss = cfg.lambda_distill * kl.mean()
    else:  # plain GRPO: the old policy is the student itself, so the ratio is 1 and only its gradient acts
        old = s_seq.detach()
    advantage = group_advantages(reward)
    ratio = torch.exp((s_seq - old).clamp(-20.0, 20.0))
    surrogate = torch.min(ratio * advantage, ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps) * advantage)
    surrogate = torch.where(advantage < 0, torch.max(surrogate, cfg.dual_clip * advantage), surrogate)
    return loss - cfg.lambda_policy * surrogate.mean(), task_mean


# ------------------------------------------------------------------------------------------ metrics, probes
@functools.cache
def _exact_match():
    return load_metric("exact_match")


def exact_match(predictions: list[str], references: list[str]) -> float:
    return _exact_match().compute(predictions=predictions, references=references)["exact_match"]


def evaluate_snrs(model: AudioLM, split: dict, snrs) -> dict:
    """{snr: {"acc", "noisy", "gsr", "clean_acc"}} for the model in eval mode, greedy answers (call under
    `evaluating`). clean_acc, the accuracy on clean audio, is the skill the noisy post-training may erode."""
    own_clean = decode(model.generate(split["clean"], split["question"]))
    clean_acc = exact_match(own_clean, split["answer_text"])
    report = {}
    for snr in snrs:
        noisy = decode(model.generate(split["noisy"][:, audio.SNRS.index(snr)], split["question"]))
        report[snr] = {
            "acc": exact_match(noisy, split["answer_text"]),
            "noisy": exact_match(noisy, split["teacher_text"]),
            "gsr": exact_match(noisy, own_clean),
            "clean_acc": clean_acc,
        }
    return report


def distill_loss(model: AudioLM, split: dict, snr: int | None) -> float:
    """KL(clean teacher || model on noisy audio at `snr`, or on clean audio when None), teacher-forced on the
    teacher's answers (call in eval mode)."""
    answers = split["teacher_answer"]
    mel = split["clean"] if snr is None else split["noisy"][:, audio.SNRS.index(snr)]
    logprobs = model.answer_logprobs(mel, split["question"], answers[:, None])
    return kl_teacher_student(split["teacher_logprobs"], logprobs[:, 0], answers).mean().item()


def make_probes(model: AudioLM, task: Task, snr: int) -> dict:
    """The optimizer's probes on the probe split (disjoint from eval): deterministic, RNG-free, eval mode inside.

    Neither probe is GSR: GSR is maximised by a model that ignores its audio (the same answer on noisy and clean
    input), and a step-size search that maximises it finds such points (seen with the paper's rule here: GSR up,
    accuracy down). "loss" asks the student to match the clean teacher on noisy *and* clean audio, and "accuracy"
    is Acc (the target answer) at `snr`; both are high only for a model that is robust and still right. "drift",
    the clean half of "loss" alone, is the KL to the start (the teacher is the student's start) on clean audio: a
    guard's probe (effopt.Guard) for the skill the post-training may erode.
    """
    split = task.splits["probe"]

    def loss() -> float:  # (KL(teacher clean || student noisy) + KL(teacher clean || student clean)) / 2
        with evaluating(model):
            return 0.5 * (distill_loss(model, split, snr) + drift())

    def accuracy() -> float:
        with evaluating(model):
            noisy = decode(model.generate(split["noisy"][:, audio.SNRS.index(snr)], split["question"]))
        return sum(a == b for a, b in zip(noisy, split["answer_text"])) / len(noisy)

    def drift() -> float:  # KL(teacher clean || student clean), the start's behaviour on clean audio
        with evaluating(model):
            return distill_loss(model, split, None)

    return {"loss": (loss, "min"), "accuracy": (accuracy, "max"), "drift": (drift, "min")}


# -------------------------------------------------------------------------------------------------- train
def train(cfg: EchoConfig, make_optimizer=None, task: Task | None = None, progress: bool = True) -> dict:
    """Post-train the clean model on noisy audio; returns the learning curve (metric = GSR at strong noise, eval set).

    `make_optimizer(model, probes)` builds the optimizer over the student's parameters; by default
    `build_optimizer(cfg.optimizer, model, lr, probes)`.
    """
    for name, allowed in [
        ("method", ("full", "grpo", "distill")),
        ("bonus", ("per-candidate", "published", "none")),
        ("metric", ("gsr", "noisy", "acc")),
    ]:
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"{name}: expected one of {', '.join(allowed)}, got {getattr(cfg, name)!r}")
    if cfg.strong_snr not in audio.SNRS or any(s not in audio.SNRS for s in cfg.train_snrs):
        raise ValueError(f"SNRs must be among {audio.SNRS}")
    task = task or prepare(cfg)
    if (task.size, task.model_seed, task.device) != (cfg.size, cfg.model_seed, _device(cfg)):
        raise ValueError("task was prepared for another size, model_seed or device")
    teacher, evaluation = task.teacher, task.splits["eval"]
    student = copy.deepcopy(teacher).requires_grad_(True).train()
    probes = make_probes(student, task, cfg.strong_snr)
    lr = cfg.lr if cfg.lr is not None else SIZES[cfg.size]["lr"]
    opt = make_optimizer(student, probes) if make_optimizer else build_optimizer(cfg.optimizer, student, lr, probes)
    generator = torch.Generator().manual_seed(cfg.seed)
    clock = {"train": 0.0, "eval": 0.0}
    curve, losses, rewards = [], [], []

    def point(step: int) -> None:
        sync(task.device)
        start = time.perf_counter()
        with evaluating(student, opt):
            strong = evaluate_snrs(student, evaluation, [cfg.strong_snr])[cfg.strong_snr]
            val = distill_loss(student, evaluation, cfg.strong_snr)
        sync(task.device)
        clock["eval"] += time.perf_counter() - start
        curve.append(
            {
                "step": step,
                "train_seconds": clock["train"],
                "eval_seconds": clock["eval"],
                "metric": strong[cfg.metric],
                "loss": val,
                "objective": val,
                "retained": strong["clean_acc"],
                **strong,
                "train_loss": sum(losses) / len(losses) if losses else None,
                "reward": sum(rewards) / len(rewards) if rewards else None,
            }
        )
        losses.clear()
        rewards.clear()
        if progress:
            print(
                f"step {step:4d}  gsr {strong['gsr']:.3f}  acc {strong['acc']:.3f}  noisy {strong['noisy']:.3f}  "
                f"val_kl {val:.4f}  train {clock['train']:.1f}s  eval {clock['eval']:.1f}s"
                + (f"  last event {last_event(opt)}" if last_event(opt) else ""),
                flush=True,
            )

    _exact_match()  # load the metric (imports `evaluate`) before the clocks start
    if cfg.final_all_snrs and task.initial_per_snr is None:
        with evaluating(teacher):
            task.initial_per_snr = evaluate_snrs(teacher, evaluation, audio.SNRS)
    point(0)
    for step in range(1, cfg.steps + 1):
        sync(task.device)
        start = time.perf_counter()
        loss, reward = echo_step(student, teacher, task, cfg, generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.max_grad_norm)
        opt.step()
        sync(task.device)
        clock["train"] += time.perf_counter() - start
        losses.append(loss.item())
        if reward is not None:
            rewards.append(reward)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            point(step)
    result = run_result(cfg, curve, opt, clock["train"], task.device)
    if cfg.final_all_snrs:
        with evaluating(student, opt):
            final = evaluate_snrs(student, evaluation, audio.SNRS)
        result["per_snr"] = {"initial": task.initial_per_snr, "final": final}
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m reference.echodistill", description=__doc__.split("\n")[0], formatter_class=ShowDefaults
    )
    for field in dataclasses.fields(EchoConfig):
        flag, default = "--" + field.name.replace("_", "-"), field.default
        about = f"EchoConfig.{field.name}"
        if isinstance(default, bool):
            parser.add_argument(flag, type=lambda v: v.lower() in ("1", "true", "yes"), default=default, help=about)
        elif isinstance(default, tuple):
            parser.add_argument(flag, type=int, nargs="+", default=default, help=about)
        else:
            kind = float if field.name == "lr" else type(default)
            parser.add_argument(flag, type=kind, default=default, help=about)
    parser.add_argument("--out", help="write the result as JSON here")
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    args["train_snrs"] = tuple(args["train_snrs"])
    result = train(EchoConfig(**args))
    if "per_snr" in result:
        for when, report in result["per_snr"].items():
            print(when, "  ".join(f"{snr}dB acc {r['acc']:.3f} gsr {r['gsr']:.3f}" for snr, r in report.items()))
    if out:
        write_json(out, result)
    return result


if __name__ == "__main__":
    main()
