"""effopt in a plain accelerate loop, on two CPU processes (DDP over gloo):

    torchrun --nproc-per-node 2 -m examples.accelerate_ddp [--steps 40]
    python -m examples.accelerate_ddp                        # one process, the same code

The optimizer is wrapped as usual and handed to ``accelerator.prepare`` with the model. Each process probes with its
own share of the validation data; effopt averages the probe values over the processes, so all of them accept the
same multiplier and the replicas stay identical. The lines between the "README" markers are the README's snippet.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from effopt import ExtrapolatingOptimizer
from reference.common import ShowDefaults

if TYPE_CHECKING:  # accelerate loads in main(), so that `--help` answers at once
    from accelerate import Accelerator


def regression(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``y = sin(x @ w)`` plus noise, with the same ``w`` for every seed."""
    w = torch.randn(8, 1, generator=torch.Generator().manual_seed(0))
    x = torch.randn(n, 8, generator=torch.Generator().manual_seed(seed))
    return x, torch.sin(x @ w) + 0.05 * torch.randn(n, 1, generator=torch.Generator().manual_seed(seed + 1))


def main(steps: int = 40) -> tuple[Accelerator, torch.nn.Module, ExtrapolatingOptimizer]:
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)  # the same initial model in every process
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    x, y = regression(512, seed=1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    val_x, val_y = regression(64, seed=100 + accelerator.process_index)  # each process its own probe data

    # README: accelerate
    def validation_loss():  # evaluates the bare model: no DDP hooks, no gradients
        return F.mse_loss(model(val_x), val_y).item()

    opt = ExtrapolatingOptimizer(torch.optim.AdamW(model.parameters(), lr=3e-3), probe=validation_loss)
    ddp_model, opt, loader = accelerator.prepare(model, opt, loader)
    # README: end

    step = 0
    while step < steps:
        for xb, yb in loader:
            loss = F.mse_loss(ddp_model(xb), yb)
            accelerator.backward(loss)
            opt.step()
            opt.zero_grad()
            step += 1
            if step == steps:
                break
    return accelerator, model, opt.optimizer  # opt is accelerate's wrapper; .optimizer is effopt's


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.accelerate_ddp",
        description="effopt in a plain accelerate loop: DDP over gloo, CPU processes",
        formatter_class=ShowDefaults,
    )
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps in every process")
    args = parser.parse_args(argv)
    accelerator, model, opt = main(steps=args.steps)
    print(f"process {accelerator.process_index} of {accelerator.num_processes}")
    if accelerator.is_main_process:
        for event in opt.events:
            print(
                f"step {event['step']:3d}: multiplier {event['accepted']:.2f}, mean validation loss {event['values']}"
            )


if __name__ == "__main__":
    cli()
