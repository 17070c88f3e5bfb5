"""A classic small task, trained from scratch at a tuned learning rate: the sanity row of the benchmarks.

    python -m reference.classic --optimizer adamw --out curve.json

An MLP learns a fixed random "teacher" MLP's labels (10 classes, 32 features) from scratch. This is the regime where
extrapolation is *not* expected to pay: a tuned learning rate already moves the weights as fast as they can go, and
the direction changes quickly early in training. It shows what the wrapper costs where it does not help.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reference.common import ShowDefaults, evaluating, run_result, set_seed, write_json
from reference.optimizers import OPTIMIZERS, build_optimizer


@dataclass
class ClassicConfig:
    optimizer: str = "adamw"  # a name in reference.optimizers.OPTIMIZERS
    lr: float = 3e-3  # tuned for AdamW on this task (best final accuracy of 1e-3, 3e-3, 1e-2)
    steps: int = 600  # optimizer steps
    seed: int = 0  # model initialisation and batches
    data_seed: int = 1234  # the task: teacher network and data
    batch_size: int = 64
    hidden: int = 128
    n_train: int = 8192
    n_probe: int = 512  # validation set for the probes, disjoint from the evaluation set
    n_eval: int = 2048
    eval_every: int = 20


def make_data(cfg: ClassicConfig):
    g = torch.Generator().manual_seed(cfg.data_seed)
    n = cfg.n_train + cfg.n_probe + cfg.n_eval
    x = torch.randn(n, 32, generator=g)
    w1, w2 = torch.randn(32, 16, generator=g) / 32**0.5, torch.randn(16, 10, generator=g)
    y = (torch.tanh(x @ w1) @ w2).argmax(-1)
    split = (cfg.n_train, cfg.n_probe, cfg.n_eval)
    return [(a, b) for a, b in zip(x.split(split), y.split(split))]


def train(cfg: ClassicConfig, make_optimizer=None, progress: bool = False) -> dict:
    (x, y), (px, py), (ex, ey) = make_data(cfg)
    set_seed(cfg.seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(32, cfg.hidden),
        torch.nn.GELU(),
        torch.nn.Linear(cfg.hidden, cfg.hidden),
        torch.nn.GELU(),
        torch.nn.Linear(cfg.hidden, 10),
    )

    def accuracy(inputs, labels) -> float:
        with evaluating(model):
            return (model(inputs).argmax(-1) == labels).float().mean().item()

    def probe_loss() -> float:
        with evaluating(model):
            return F.cross_entropy(model(px), py).item()

    probes = {"loss": (probe_loss, "min"), "accuracy": (lambda: accuracy(px, py), "max")}
    opt = (make_optimizer or (lambda m, p: build_optimizer(cfg.optimizer, m, cfg.lr, p)))(model, probes)
    batches = torch.Generator().manual_seed(cfg.seed)

    def evaluate():
        with evaluating(model, opt):
            return (model(ex).argmax(-1) == ey).float().mean().item()

    curve = [{"step": 0, "train_seconds": 0.0, "eval_seconds": 0.0, "metric": evaluate(), "loss": None}]
    train_seconds = eval_seconds = 0.0
    for step in range(1, cfg.steps + 1):
        start = time.perf_counter()
        idx = torch.randint(0, len(x), (cfg.batch_size,), generator=batches)
        opt.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        train_seconds += time.perf_counter() - start
        if step % cfg.eval_every == 0 or step == cfg.steps:
            start = time.perf_counter()
            metric = evaluate()
            eval_seconds += time.perf_counter() - start
            curve.append(
                {
                    "step": step,
                    "train_seconds": train_seconds,
                    "eval_seconds": eval_seconds,
                    "metric": metric,
                    "loss": loss.item(),
                }
            )
            if progress:
                print(f"step {step:5d}  loss {loss.item():.4f}  accuracy {metric:.4f}")
    return run_result(cfg, curve, opt, train_seconds, "cpu", eval_seconds=eval_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m reference.classic", description=__doc__.splitlines()[0], formatter_class=ShowDefaults
    )
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw", help="reference.optimizers.OPTIMIZERS")
    parser.add_argument("--lr", type=float, default=ClassicConfig.lr, help="AdamW's tuned lr")
    parser.add_argument("--steps", type=int, default=ClassicConfig.steps, help="optimizer steps")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batches")
    parser.add_argument("--out", help="write the learning curve here as JSON")
    args = parser.parse_args()
    result = train(ClassicConfig(optimizer=args.optimizer, lr=args.lr, steps=args.steps, seed=args.seed), progress=True)
    print(f"accuracy {result['initial_metric']:.4f} -> {result['final_metric']:.4f} in {result['train_seconds']:.1f}s")
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
