"""Plain supervised fine-tuning (SFT) of a small causal LM: the OPD task's warm-started student, trained on the
reference answers with cross-entropy at a post-training learning rate.

    python -m reference.sft --optimizer adamw --steps 300 --out curve.json

It shares everything with reference/opd.py (data, tokenizer, the cached student start, generation, exact match) and
differs only in the loss: teacher-forced cross-entropy on the reference answers instead of reverse KL on the
student's own samples. No teacher is used in training; the loss probe is the cross-entropy on a fixed probe split.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reference import opd
from reference.common import ShowDefaults, evaluating, last_event, run_result, set_seed, sync, write_json
from reference.optimizers import OPTIMIZERS, Probes, build_optimizer


@dataclass
class SFTConfig:
    size: str = "quick"  # as in reference.opd.SIZES
    regime: str = "near-teacher"  # which cached student start (reference.opd.REGIMES)
    optimizer: str = "adamw"  # a name in reference.optimizers.OPTIMIZERS
    lr: float = 3e-6  # a post-training learning rate (the benchmark's): AdamW needs the whole budget to gain
    steps: int = 300
    seed: int = 0  # batch order
    task_seed: int = 0  # data and the student's start, as in OPD
    batch_size: int = 64
    eval_every: int | None = None  # None: the size's (as in OPD)
    device: str | None = None  # None: "cuda" when available, else "cpu"

    def opd_config(self) -> opd.OPDConfig:
        return opd.OPDConfig(
            size=self.size, regime=self.regime, task_seed=self.task_seed, device=self.device, eval_every=self.eval_every
        ).resolved()


def cross_entropy(model, split: opd.Split, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of the reference answers (and "</s>"), teacher-forced."""
    prompt_ids, answer_ids = (
        (split.prompt_ids, split.answer_ids) if rows is None else (split.prompt_ids[rows], split.answer_ids[rows])
    )
    logp = opd.log_probs(model, prompt_ids, answer_ids)
    return F.nll_loss(logp.flatten(0, 1), answer_ids.flatten())


def make_probes(task: opd.Task, model) -> Probes:
    """ "loss": cross-entropy on the probe_loss split; "accuracy" and "drift" as in OPD (reference.opd.make_probes)."""

    def loss() -> float:
        with evaluating(model):
            return cross_entropy(model, task.data["probe_loss"]).item()

    return {**opd.make_probes(task, model), "loss": (loss, "min")}


def train(
    cfg: SFTConfig, make_optimizer: Callable | None = None, task: opd.Task | None = None, progress: bool = True
) -> dict:
    """Fine-tune for `cfg.steps` steps; the result has the same shape as reference.opd.train's (objective: the
    cross-entropy of the eval split's reference answers)."""
    ocfg = cfg.opd_config()
    task = task or opd.prepare(ocfg, progress=progress)
    model = opd.build_model(task.student_spec, ocfg.device)
    model.load_state_dict(task.student_state)
    model.train()
    probes = make_probes(task, model)
    opt = (make_optimizer or (lambda m, p: build_optimizer(cfg.optimizer, m, cfg.lr, p)))(model, probes)
    set_seed(cfg.seed)
    order = torch.Generator().manual_seed(cfg.seed)
    data = task.data["opd"]
    curve, train_seconds, eval_seconds = [], 0.0, 0.0

    def evaluate(step: int, loss: float | None) -> None:
        nonlocal eval_seconds
        sync(ocfg.device)
        start = time.perf_counter()
        with evaluating(model, opt):
            metric = opd.exact_match(model, task.data["eval"])
            objective = cross_entropy(model, task.data["eval"]).item()
            kept = opd.retention(task, model)
        sync(ocfg.device)
        eval_seconds += time.perf_counter() - start
        curve.append(
            dict(
                step=step,
                train_seconds=train_seconds,
                eval_seconds=eval_seconds,
                metric=metric,
                loss=loss,
                objective=objective,
                **kept,
            )
        )
        if progress:
            event = last_event(opt)
            print(
                f"sft step {step:4d}  exact match {metric:.3f}  retained {kept['retained']:.3f}"
                + (f"  last event {event}" if event else "")
            )

    evaluate(0, None)
    for step in range(1, cfg.steps + 1):
        sync(ocfg.device)
        start = time.perf_counter()
        rows = torch.randint(len(data.answers), (cfg.batch_size,), generator=order).to(data.prompt_ids.device)
        loss = cross_entropy(model, data, rows)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(ocfg.device)
        train_seconds += time.perf_counter() - start
        if step % ocfg.eval_every == 0 or step == cfg.steps:
            evaluate(step, loss.item())
    return run_result(cfg, curve, opt, train_seconds, ocfg.device, eval_seconds=eval_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m reference.sft", description=__doc__.split("\n\n")[0], formatter_class=ShowDefaults
    )
    parser.add_argument("--optimizer", default="adamw", choices=OPTIMIZERS, help="reference.optimizers.OPTIMIZERS")
    parser.add_argument("--size", default="quick", choices=tuple(opd.SIZES), help="as in reference.opd")
    parser.add_argument("--lr", type=float, default=SFTConfig.lr, help="a post-training lr")
    parser.add_argument("--steps", type=int, default=SFTConfig.steps, help="optimizer steps")
    parser.add_argument("--seed", type=int, default=0, help="batch order")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args()
    result = train(
        SFTConfig(size=args.size, optimizer=args.optimizer, lr=args.lr, steps=args.steps, seed=args.seed),
        progress=False,
    )
    print(
        f"sft {args.optimizer}: exact match {result['initial_metric']:.3f} -> {result['final_metric']:.3f} in "
        f"{args.steps} steps, {result['train_seconds']:.1f} s training"
    )
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
