"""effopt inside TRL's GRPOTrainer: GRPO with a reward, effopt probing a smooth, deterministic signal of its own.

    python -m examples.trl_grpo [--max-steps 8] [--output-dir DIR]

A tiny Llama built from a config (the 16-token arithmetic tokenizer of reference/opd.py) is rewarded for the share
of sevens in its four-token completions of "<s>1+2=" style prompts. The reward is sampled and noisy; the probe is
not: the mean probability the policy gives to "7" as the next token of fixed probe prompts (higher is better, hence
mode="max"). GRPOTrainer takes no optimizer_cls_and_kwargs argument, but, as every Trainer, builds its optimizer from
the attribute of that name. The lines between the "README" markers are the README's snippet, word for word.
"""

from __future__ import annotations

import argparse
import tempfile
from typing import TYPE_CHECKING

import torch

from reference.common import ShowDefaults, evaluating

if TYPE_CHECKING:  # TRL, transformers and datasets load in main(), so that `--help` answers at once
    from trl import GRPOTrainer


def sevens(completions, **kwargs) -> list[float]:
    """The reward: the share of "7" among each completion's characters."""
    return [text.count("7") / max(len(text), 1) for text in completions]


def main(max_steps: int = 8, output_dir: str | None = None, callbacks=()) -> GRPOTrainer:
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from effopt.integrations import EffoptCallback, extrapolating
    from reference.opd import build_tokenizer

    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    prompts = Dataset.from_dict({"prompt": [f"{a}+{b}=" for a in range(10) for b in range(10)]})
    probe_inputs = tokenizer([f"{a}{b}+{b}{a}=" for a in range(4) for b in range(4)], return_tensors="pt")
    seven = tokenizer.convert_tokens_to_ids("7")

    def p_seven() -> float:  # deterministic given the weights: no sampling, the model in eval mode
        with evaluating(model):
            logits = model(**probe_inputs).logits[:, -1]
        return logits.softmax(-1)[:, seven].mean().item()

    args = GRPOConfig(
        output_dir or tempfile.mkdtemp(prefix="effopt-grpo-"),
        max_steps=max_steps,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=4,
        logging_steps=4,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
    )
    # README: grpo
    trainer = GRPOTrainer(
        model=model, reward_funcs=sevens, args=args, train_dataset=prompts, processing_class=tokenizer
    )
    trainer.add_callback(EffoptCallback(p_seven, trainer=trainer))  # the probe; events go to the Trainer's log
    trainer.optimizer_cls_and_kwargs = (extrapolating(torch.optim.AdamW, mode="max"), {"lr": args.learning_rate})
    # README: end
    for callback in callbacks:
        trainer.add_callback(callback)
    trainer.train()
    return trainer


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.trl_grpo", description=__doc__.split("\n\n")[0], formatter_class=ShowDefaults
    )
    parser.add_argument("--max-steps", type=int, default=8, help="GRPO steps")
    parser.add_argument(
        "--output-dir", default=None, help="the Trainer's output folder; none given: a new temporary one"
    )
    args = parser.parse_args(argv)
    trainer = main(max_steps=args.max_steps, output_dir=args.output_dir)
    for event in trainer.optimizer.optimizer.events:
        print(f"step {event['step']:3d}: multiplier {event['accepted']:.2f}, P(7) {event['values']}")


if __name__ == "__main__":
    cli()
