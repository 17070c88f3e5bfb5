"""The addition world that the OPD, SFT and RL loops share, fully offline: sizes, the tokenizer, the data, the models,
generation, exact match, and the supervised recipe that trains the teacher and warms the student up.

The task is n-digit addition with exact-match answers: the prompt "<s>0427+5191=" asks for the sum written with
n + 1 digits, "05618</s>". The retained skill is digit reversal (see _make_skill_data). reference/opd.py builds a
task instance from these pieces (`prepare`) and runs the loops on it; its names re-export everything here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F

from reference.common import evaluating, kl_over_vocab, load_metric, through_first

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
VOCAB = [PAD, BOS, EOS, UNK, *"0123456789", "+", "="]


# ----------------------------------------------------------------------------------------------------------------------
# Sizes


@dataclass(frozen=True)
class Size:
    """Everything that a size fixes: the task, both models, how they are trained, the OPD batch and evaluation sets."""

    digits: int  # operand length: n-digit + n-digit, answer of n + 1 digits
    teacher: dict  # LlamaConfig fields
    student: dict
    splits: dict  # split name -> number of problems; all splits are disjoint
    skill_splits: dict  # the retained skill's splits (reversal, see _make_skill_data), disjoint likewise
    teacher_steps: int  # at most this many supervised steps; stops early at teacher_target on the dev split
    teacher_target: float
    teacher_batch: int
    student_max_steps: int  # the student's warm-up stops at the regime's target, or here
    student_batch: int
    check_every: int  # the teacher's dev accuracy is checked this often
    student_check_every: int  # the student's, more often: its accuracy jumps within a few dozen steps
    batch_size: int  # prompts per OPD step, one sample each
    eval_every: int


def _llama(hidden: int, layers: int, heads: int) -> dict:
    return dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        intermediate_size=4 * hidden,
    )


SIZES: dict[str, Size] = {
    # For tests: seconds to build, accuracy meaningless.
    "tiny": Size(
        digits=2,
        teacher=_llama(32, 1, 2),
        student=_llama(16, 1, 2),
        splits=dict(train=4096, opd=512, dev=64, probe_loss=32, probe_accuracy=16, eval=64),
        skill_splits=dict(skill_train=2048, skill_dev=64, skill_eval=64),
        teacher_steps=60,
        teacher_target=0.99,
        teacher_batch=64,
        student_max_steps=20,
        student_batch=64,
        check_every=20,
        student_check_every=10,
        batch_size=16,
        eval_every=2,
    ),
    # CPU: the teacher trains once in about 4 minutes on one core; an OPD step takes about 0.065 s.
    "quick": Size(
        digits=4,
        teacher=_llama(128, 2, 4),
        student=_llama(64, 2, 4),
        splits=dict(train=131072, opd=16384, dev=256, probe_loss=128, probe_accuracy=50, eval=512),
        skill_splits=dict(skill_train=65536, skill_dev=256, skill_eval=256),
        teacher_steps=1500,
        teacher_target=0.99,
        teacher_batch=128,
        student_max_steps=4000,
        student_batch=128,
        check_every=25,
        student_check_every=5,
        batch_size=64,
        eval_every=10,
    ),
    # One GPU: a longer task, larger models and batches, a larger evaluation set. Not yet run on a GPU: the regimes'
    # learning rates were tuned at the quick size.
    "gpu": Size(
        digits=5,
        teacher=_llama(256, 4, 8),
        student=_llama(96, 2, 4),
        splits=dict(train=524288, opd=65536, dev=512, probe_loss=256, probe_accuracy=50, eval=1024),
        skill_splits=dict(skill_train=131072, skill_dev=512, skill_eval=512),
        teacher_steps=8000,
        teacher_target=0.99,
        teacher_batch=256,
        student_max_steps=8000,
        student_batch=256,
        check_every=50,
        student_check_every=10,
        batch_size=256,
        eval_every=20,
    ),
}


# The supervised recipe shared by the teacher and the student's warm-up.
SFT = dict(lr=3e-3, betas=(0.9, 0.98), warmup=100, clip=1.0)


# ----------------------------------------------------------------------------------------------------------------------
# Tokenizer and data


@cache
def build_tokenizer():
    """A transformers fast tokenizer with one token per character of "0123456789+=" and four specials."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(VOCAB)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK, padding_side="left"
    )


def _make_splits(splits: dict, seed: int, draw, render):
    """A DatasetDict of disjoint splits of distinct items `draw(rng)`, each rendered as `render(item) -> (prompt,
    answer)` and tokenized: "<s>" before the prompt, "</s>" after the answer."""
    import random

    from datasets import Dataset, DatasetDict

    tokenizer, rng, seen, out = build_tokenizer(), random.Random(seed), set(), {}
    for name, count in splits.items():
        items = []
        while len(items) < count:
            item = draw(rng)
            if item not in seen:
                seen.add(item)
                items.append(item)
        prompts, answers = map(list, zip(*map(render, items)))
        out[name] = Dataset.from_dict(
            {
                "prompt": prompts,
                "answer": answers,
                "prompt_ids": tokenizer(prompts)["input_ids"],  # "<s>" first
                "answer_ids": [
                    ids + [tokenizer.eos_token_id] for ids in tokenizer(answers, add_special_tokens=False)["input_ids"]
                ],
            }
        )
    return DatasetDict(out)


def _make_data(digits: int, splits: dict, seed: int):
    """Disjoint splits of distinct problems a + b, operands uniform in [0, 10^digits), zero-padded to fixed width."""
    return _make_splits(
        splits,
        seed,
        lambda rng: (rng.randrange(10**digits), rng.randrange(10**digits)),
        lambda ab: (f"{ab[0]:0{digits}d}+{ab[1]:0{digits}d}=", f"{sum(ab):0{digits + 1}d}"),
    )


def _make_skill_data(digits: int, splits: dict, seed: int):
    """The retained skill, which OPD never trains: "<s>+" and 2n digits, "=", asks for the last n + 1 digits in
    reverse order ("+04275191=" -> "19157"). Same prompt and answer lengths as the addition problems, a format the
    teacher never sees; the student learns it before its addition warm-up and keeps it through that warm-up."""
    return _make_splits(
        splits,
        seed,
        lambda rng: "".join(rng.choice("0123456789") for _ in range(2 * digits)),
        lambda d: (f"+{d}=", d[-(digits + 1) :][::-1]),
    )


@dataclass
class Split:
    prompts: list[str]
    answers: list[str]
    prompt_ids: torch.Tensor  # (N, P), every prompt the same length
    answer_ids: torch.Tensor  # (N, T), the answer and "</s>"

    @classmethod
    def of(cls, dataset, device) -> Split:
        strings = dataset.select_columns(["prompt", "answer"])[:]  # whole columns at once: row by row is slow
        ids = dataset.select_columns(["prompt_ids", "answer_ids"]).with_format("torch")[:]
        return cls(strings["prompt"], strings["answer"], ids["prompt_ids"].to(device), ids["answer_ids"].to(device))

    def __add__(self, other: Split) -> Split:
        return Split(
            self.prompts + other.prompts,
            self.answers + other.answers,
            torch.cat([self.prompt_ids, other.prompt_ids]),
            torch.cat([self.answer_ids, other.answer_ids]),
        )


# ----------------------------------------------------------------------------------------------------------------------
# Models, generation, exact match


def build_model(spec: dict, device="cpu"):
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(VOCAB),
        max_position_embeddings=64,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **spec,
    )
    return LlamaForCausalLM(config).to(device)


def generate(
    model, prompt_ids: torch.Tensor, new_tokens: int, sample: bool, temperature: float = 1.0, chunk: int = 1024
) -> torch.Tensor:
    """Completions (N, new_tokens) of fixed-length prompts: greedy, or sampled at `temperature` (no top-k/top-p).

    After "</s>" the rest of a row is "<pad>". Uses the global RNG; callers that must not disturb it fork it.
    """
    from transformers import GenerationConfig

    tokenizer = build_tokenizer()
    config = GenerationConfig(
        max_new_tokens=new_tokens,
        min_new_tokens=0,
        do_sample=sample,
        use_cache=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        **(dict(temperature=temperature, top_k=0, top_p=1.0) if sample else {}),
    )
    out = []
    with torch.no_grad():
        for part in prompt_ids.split(chunk):
            seq = model.generate(part, attention_mask=torch.ones_like(part), generation_config=config)
            completion = seq[:, part.shape[1] :]
            if completion.shape[1] < new_tokens:  # every row stopped early
                completion = F.pad(completion, (0, new_tokens - completion.shape[1]), value=tokenizer.pad_token_id)
            out.append(completion)
    return torch.cat(out)


def completion_mask(completion: torch.Tensor) -> torch.Tensor:
    """1.0 on the completion's tokens up to and including the first "</s>", 0.0 after it."""
    return through_first(completion, build_tokenizer().eos_token_id)


def decode(completion: torch.Tensor) -> list[str]:
    """Answer strings: each row up to its first "</s>"."""
    tokenizer = build_tokenizer()
    rows = []
    for row in completion.tolist():
        rows.append(row[: row.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in row else row)
    return tokenizer.batch_decode(rows, skip_special_tokens=True)


@cache
def exact_match_metric():
    return load_metric("exact_match")


def exact_match(model, split: Split, sample: bool = False, temperature: float = 1.0) -> float:
    completion = generate(model, split.prompt_ids, split.answer_ids.shape[1], sample, temperature)
    return float(exact_match_metric().compute(predictions=decode(completion), references=split.answers)["exact_match"])


def log_probs(model, prompt_ids: torch.Tensor, completion: torch.Tensor) -> torch.Tensor:
    """log p(. | prefix) at each completion position: (N, T, V)."""
    logits = model(torch.cat([prompt_ids, completion], 1)).logits[:, prompt_ids.shape[1] - 1 : -1]
    return logits.float().log_softmax(-1)


def reverse_kl(student_logp: torch.Tensor, teacher_logp: torch.Tensor) -> torch.Tensor:
    """KL(student || teacher) over the vocabulary at each position: sum_v p_s(v) (log p_s(v) - log p_t(v))."""
    return kl_over_vocab(student_logp, teacher_logp)


# ----------------------------------------------------------------------------------------------------------------------
# Supervised training: the teacher, and the student's warm-up


def _supervised(
    model,
    train: Split,
    dev: Split,
    steps: int,
    batch: int,
    target: float,
    check_every: int,
    seed: int,
    desc: str,
    progress: bool,
) -> dict:
    """Cross-entropy on answer tokens until greedy dev accuracy reaches `target` (checked every `check_every` steps)
    or `steps` run out; AdamW with a linear warm-up, then a cosine decay over `steps`. Returns a CPU state dict."""
    from tqdm.auto import tqdm

    opt = torch.optim.AdamW(model.parameters(), lr=SFT["lr"], betas=SFT["betas"], weight_decay=0.0)
    order = torch.Generator().manual_seed(seed)
    model.train()
    bar = tqdm(range(1, steps + 1), desc=desc, disable=not progress, leave=False)
    accuracy = 0.0
    for step in bar:
        lr = SFT["lr"] * min(1.0, step / SFT["warmup"]) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in opt.param_groups:
            group["lr"] = lr
        rows = torch.randint(len(train.answers), (batch,), generator=order).to(train.prompt_ids.device)
        logp = log_probs(model, train.prompt_ids[rows], train.answer_ids[rows])
        loss = F.nll_loss(logp.flatten(0, 1), train.answer_ids[rows].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), SFT["clip"])
        opt.step()
        if step % check_every == 0 or step == steps:
            with evaluating(model):
                accuracy = exact_match(model, dev)
            bar.set_postfix(loss=f"{loss.item():.3f}", dev_accuracy=f"{accuracy:.3f}")
            if accuracy >= target:
                break
    bar.close()
    return {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}


# ----------------------------------------------------------------------------------------------------------------------
# Teacher-forced targets


@dataclass
class TeacherTargets:
    """Fixed prompts, the teacher's greedy completions of them, its log-probs there (N, T, V) and their mask (N, T):
    what a teacher-forced reverse KL to the teacher is measured on."""

    prompt_ids: torch.Tensor
    completion: torch.Tensor
    teacher_logp: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def of(cls, teacher, split: Split) -> TeacherTargets:
        completion = generate(teacher, split.prompt_ids, split.answer_ids.shape[1], sample=False)
        return cls(
            split.prompt_ids, completion, log_probs(teacher, split.prompt_ids, completion), completion_mask(completion)
        )

    def reverse_kl(self, student) -> float:
        """The mean per-token KL(student || teacher) on these sequences (call without gradients)."""
        kl = reverse_kl(log_probs(student, self.prompt_ids, self.completion), self.teacher_logp)
        return float((kl * self.mask).sum() / self.mask.sum())
