"""The EchoDistill world: sizes, vocabulary, the audio LM (a log-mel encoder and a small causal LM over audio tokens
and words), its data (reference/audio.py's synthetic clips as features and token ids) and its clean pre-training.
reference/echodistill.py builds a task instance from these (`prepare`) and runs the loop; its names re-export them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from reference import audio
from reference.common import kl_over_vocab, set_seed, through_first

# Model, data and clean pre-training per size; `lr` is the post-training learning rate.
# fmt: off
_SIZE_COLUMNS = ("d_model", "layers", "heads", "ffn", "width", "n_pretrain", "pretrain_steps", "n_train", "n_probe",
                 "n_eval", "lr")
SIZES = {name: dict(zip(_SIZE_COLUMNS, row)) for name, row in {
    #        d_model layers heads  ffn width n_pretrain pretrain_steps n_train n_probe n_eval    lr
    "tiny":  (   32,     1,    2,    64,  32,      256,         150,       32,     16,     32, 1e-3),
    "quick": (   64,     2,    4,   128,  64,     3072,        1500,      384,    128,    512, 1e-3),
    "gpu":   (  256,     4,    4,  1024, 128,    16384,        4000,     4096,    256,   1024, 3e-4),
}.items()}
# fmt: on
FEATURES = {"n_mels": 32, "hop": 320, "top_db": 45.0}  # log-mel: 26 frames per 0.5 s clip, 13 audio tokens
PRETRAIN = {"batch_size": 64, "lr": 3e-3, "weight_decay": 0.01, "warmup": 50}
VOCAB = ["<pad>", "<eos>"] + sorted(
    set(audio.LETTERS) | {w for q, choices in audio.TASKS.values() for w in q.split() + list(choices)}
)
DATA_VERSION, MODEL_VERSION = 4, 1  # bump when reference/audio.py or the model's code changes what is cached
PAD, EOS = 0, 1
ANSWER_LEN = 3  # "<letter> <word> <eos>"
QUESTION_LEN = max(len(q.split()) + 2 * len(c) for q, c in audio.TASKS.values())


# ----------------------------------------------------------------------------------------------------- model
class AudioEncoder(nn.Module):
    """log-mel [B, n_mels, frames] -> [B, frames / 2, d_model]: two convolutions (stride 2), a residual MLP."""

    def __init__(self, n_mels: int, width: int, d_model: int):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.proj = nn.Linear(width, d_model)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel - 0.5)))).transpose(1, 2)
        return self.proj(x + self.mlp(self.norm(x)))


class AudioLM(nn.Module):
    """An audio LM: the prompt is [audio embeddings, question tokens], the answer is generated after it."""

    def __init__(self, size: str):
        super().__init__()
        from transformers import Qwen2Config, Qwen2ForCausalLM

        s = SIZES[size]
        self.encoder = AudioEncoder(FEATURES["n_mels"], s["width"], s["d_model"])
        self.lm = Qwen2ForCausalLM(
            Qwen2Config(
                vocab_size=len(VOCAB),
                hidden_size=s["d_model"],
                intermediate_size=s["ffn"],
                num_hidden_layers=s["layers"],
                num_attention_heads=s["heads"],
                num_key_value_heads=s["heads"],
                max_position_embeddings=64,
                pad_token_id=PAD,
                eos_token_id=EOS,
                bos_token_id=None,
                tie_word_embeddings=False,
            )
        )

    def prompt(self, mel: torch.Tensor, question: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.encoder(mel), self.lm.get_input_embeddings()(question)], dim=1)

    def _start(self, mel, question, repeats: int):
        """Run the prompt once, then share its KV cache among `repeats` answers per prompt."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.lm.config)
        logits = self.lm(inputs_embeds=self.prompt(mel, question), cache=cache, logits_to_keep=1).logits
        if repeats > 1:
            cache.batch_repeat_interleave(repeats)
        return logits.repeat_interleave(repeats, dim=0), cache

    def answer_logprobs(self, mel, question, answers: torch.Tensor) -> torch.Tensor:
        """Teacher-forced next-token log-probs [B, R, ANSWER_LEN, vocab] of R answers [B, R, ANSWER_LEN] per prompt."""
        B, R, A = answers.shape
        first, cache = self._start(mel, question, R)
        rest = self.lm(input_ids=answers.flatten(0, 1)[:, :-1], cache=cache).logits
        return torch.cat([first, rest], dim=1).log_softmax(-1).view(B, R, A, -1)

    @torch.no_grad()
    def generate(self, mel, question, k: int = 1, generator: torch.Generator | None = None, temperature: float = 1.0):
        """k answers [B, k, ANSWER_LEN] per prompt: sampled with `generator`, or greedy when it is None; padded after
        <eos>. A hand-written loop rather than `lm.generate`: it samples with a dedicated generator (the training
        randomness never touches the global RNG) and runs each prompt once for its k answers."""
        logits, cache = self._start(mel, question, k)
        tokens, done = [], torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
        for i in range(ANSWER_LEN):
            if generator is None:
                token = logits[:, -1].argmax(-1)
            else:
                probs = (logits[:, -1].float() / temperature).softmax(-1).cpu()  # the generator lives on the cpu
                token = torch.multinomial(probs, 1, generator=generator)[:, 0].to(logits.device)
            token = token.masked_fill(done, PAD)
            tokens.append(token)
            done |= token == EOS
            if i + 1 < ANSWER_LEN:
                logits = self.lm(input_ids=token[:, None], cache=cache).logits
        return torch.stack(tokens, dim=1).view(-1, k, ANSWER_LEN)


def answer_mask(answers: torch.Tensor) -> torch.Tensor:
    """1.0 on the answer's tokens up to and including its first <eos>."""
    return through_first(answers, EOS)


def decode(answers: torch.Tensor) -> list[str]:
    texts = []
    for row in answers.reshape(-1, ANSWER_LEN).tolist():
        row = row[: row.index(EOS)] if EOS in row else row
        texts.append(" ".join(VOCAB[t] for t in row if t != PAD))
    return texts


def sequence_logprob(logprobs: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """Length-normalised log-prob [B, R] of answers [B, R, A] under next-token log-probs [B, R, A, vocab]."""
    mask = answer_mask(answers)
    token = logprobs.gather(-1, answers[..., None])[..., 0]
    return (token * mask).sum(-1) / mask.sum(-1)


def kl_teacher_student(teacher: torch.Tensor, student: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary KL(teacher || student) per prompt [B], averaged over the answer's tokens [B, A]."""
    mask = answer_mask(answers)
    kl = kl_over_vocab(teacher, student)
    return (kl * mask).sum(-1) / mask.sum(-1)


# ------------------------------------------------------------------------------------------------------ data
def _tokens(words: list[str], length: int) -> list[int]:
    return [PAD] * (length - len(words)) + [VOCAB.index(w) for w in words]  # questions are left-padded


def _quantised(features: torch.Tensor) -> torch.Tensor:
    """Log-mel features in [0, 1] stored as uint8 steps of 1/255 (0.18 dB at top_db 45): a quarter of the bytes, so
    that the data can ship with the project (reference.common.SHIPPED_DIR). `prepare` turns them back into floats."""
    return (features * 255).round().to(torch.uint8)


def build_data(size: str) -> dict:
    """Features (uint8, see _quantised) and token ids of every split (train/probe/eval with noisy versions, pretrain
    clean only)."""
    s = SIZES[size]
    logmel = audio.LogMel(**FEATURES)
    splits = {
        "pretrain": (s["n_pretrain"], 100, ()),
        "train": (s["n_train"], 101, audio.SNRS),
        "probe": (s["n_probe"], 102, audio.SNRS),
        "eval": (s["n_eval"], 103, audio.SNRS),
    }
    data = {}
    for name, (n, seed, snrs) in splits.items():
        chunks = []
        for chunk, start in enumerate(range(0, n, 512)):  # 512 clips at a time bound the memory of the waveforms
            ds = audio.make_split(min(512, n - start), seed * 10_000 + chunk, snrs)
            cols = ds.with_format("torch", columns=["clean"] + (["noisy"] if snrs else []))[:]
            chunks.append(
                {
                    "clean": _quantised(logmel(cols["clean"])),
                    "question": torch.tensor([_tokens(q.split(), QUESTION_LEN) for q in ds["question"]]),
                    "answer": torch.tensor([_tokens(a.split() + ["<eos>"], ANSWER_LEN) for a in ds["answer"]]),
                    "answer_text": list(ds["answer"]),
                    "offered": [[f"{letter} {word}" for letter, word in zip(audio.LETTERS, c)] for c in ds["choices"]],
                    **({"noisy": _quantised(logmel(cols["noisy"]))} if snrs else {}),
                }
            )
        data[name] = {
            k: torch.cat([c[k] for c in chunks]) if torch.is_tensor(chunks[0][k]) else [x for c in chunks for x in c[k]]
            for k in chunks[0]
        }
    return data


def pretrain(size: str, data: dict, seed: int, device: str) -> dict:
    """Supervised training on clean audio: cross-entropy of the target answer; warm-up then cosine decay."""
    set_seed(seed)
    model, steps = AudioLM(size).to(device), SIZES[size]["pretrain_steps"]
    split = {k: data["pretrain"][k].to(device) for k in ("clean", "question", "answer")}
    opt = torch.optim.AdamW(model.parameters(), lr=PRETRAIN["lr"], weight_decay=PRETRAIN["weight_decay"])
    warm = min(PRETRAIN["warmup"], steps // 4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min(1.0, (t + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(t / steps, 1.0)))
    )
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(split["answer"]), (PRETRAIN["batch_size"],), generator=generator).to(device)
        answers = split["answer"][idx][:, None]
        logprobs = model.answer_logprobs(split["clean"][idx], split["question"][idx], answers)
        loss = -sequence_logprob(logprobs, answers).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return {k: v.cpu() for k, v in model.state_dict().items()}
