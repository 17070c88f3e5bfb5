"""effopt inside transformers' Trainer: the Trainer builds the optimizer from a class (the only way it accepts one
under FSDP) and effopt probes with the Trainer's own evaluation loss.

    python -m examples.hf_trainer [--max-steps 30] [--output-dir DIR]

A tiny Llama built from a config learns to continue digit sequences that count up by one (mod 10): offline, on CPU,
in seconds. The lines between the "README" markers are the README's snippet, word for word (a test checks).
"""

from __future__ import annotations

import argparse
import tempfile
from typing import TYPE_CHECKING

import torch

from reference.common import ShowDefaults

if TYPE_CHECKING:  # transformers and datasets load in main(), so that `--help` answers at once
    from datasets import Dataset
    from transformers import Trainer


def counting(n: int, length: int = 12, seed: int = 0) -> Dataset:
    """``n`` sequences ``s, s+1, s+2, ... (mod 10)`` from random starts; the labels are the inputs (causal LM)."""
    from datasets import Dataset

    start = torch.randint(0, 10, (n, 1), generator=torch.Generator().manual_seed(seed))
    ids = ((start + torch.arange(length)) % 10).tolist()
    return Dataset.from_dict({"input_ids": ids, "labels": ids})


def main(max_steps: int = 30, output_dir: str | None = None, callbacks=()) -> Trainer:
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    from effopt.integrations import EffoptCallback, extrapolating

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=10,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16,
    )
    model = LlamaForCausalLM(config)
    train_set, eval_set = counting(512, seed=0), counting(32, seed=1)
    args = TrainingArguments(
        output_dir or tempfile.mkdtemp(prefix="effopt-hf-trainer-"),
        max_steps=max_steps,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=16,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
    )
    # README: trainer
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        optimizer_cls_and_kwargs=(extrapolating(torch.optim.AdamW), {"lr": args.learning_rate}),
    )
    trainer.add_callback(EffoptCallback(trainer=trainer))  # probe: the Trainer's eval loss on eval_dataset
    # README: end
    for callback in callbacks:
        trainer.add_callback(callback)
    trainer.train()
    return trainer


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.hf_trainer", description=__doc__.split("\n\n")[0], formatter_class=ShowDefaults
    )
    parser.add_argument("--max-steps", type=int, default=30, help="training steps")
    parser.add_argument(
        "--output-dir", default=None, help="the Trainer's output folder; none given: a new temporary one"
    )
    args = parser.parse_args(argv)
    trainer = main(max_steps=args.max_steps, output_dir=args.output_dir)
    for event in trainer.optimizer.optimizer.events:  # trainer.optimizer is accelerate's wrapper around effopt's
        print(f"step {event['step']:3d}: multiplier {event['accepted']:.2f}, eval loss {event['values']}")
    print("final eval loss", trainer.evaluate()["eval_loss"])


if __name__ == "__main__":
    cli()
