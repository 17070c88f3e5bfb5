"""Offline audio question answering for the EchoDistill loop: synthetic clips, offline noises, SNR mixing, log-mel.

Every clip is 0.5 s at 16 kHz and answers one multiple-choice question about itself:

    direction  "does the pitch rise or fall"         rising / falling       (an exponential sweep)
    count      "how many beeps"                      one / two / three / four
    order      "which tone comes first"              low / high             (two tones in a row)
    kind       "what kind of sound is it"            tone / chirp / noise / clicks
    level      "is the tone low middle or high"      low / middle / high

All choices are offered, shuffled, after letters ("... ? A falling B rising"); the answer is "<letter> <word>".
Noises are made offline (`NOISE_TYPES`) and mixed with `torchaudio.functional.add_noise` at `SNRS` dB, where
SNR = 10 log10(P_clean / P_noise) over the whole clip. Everything is a pure function of its seed.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio

SAMPLE_RATE = 16_000
CLIP_SECONDS = 0.5
SNRS = (-10, -5, 0, 5, 10, 20, 30)
NOISE_TYPES = ("white", "coloured", "babble", "hum", "impulsive")
LETTERS = ("A", "B", "C", "D")
TASKS = {  # name: (question words, choice words)
    "direction": ("does the pitch rise or fall ?", ("rising", "falling")),
    "count": ("how many beeps ?", ("one", "two", "three", "four")),
    "order": ("which tone comes first ?", ("low", "high")),
    "kind": ("what kind of sound is it ?", ("tone", "chirp", "noise", "clicks")),
    "level": ("is the tone low middle or high ?", ("low", "middle", "high")),
}


def _envelope(t: np.ndarray, start: float, duration: float, ramp: float = 0.005) -> np.ndarray:
    """1 inside [start, start + duration], with raised-cosine ramps of `ramp` seconds; 0 outside."""
    edge = np.clip(np.minimum(t - start, start + duration - t) / ramp, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * edge)


def _sweep(t: np.ndarray, f0: float, f1: float, start: float, duration: float) -> np.ndarray:
    """Exponential sweep from f0 to f1 Hz over [start, start + duration] (phase integrated exactly)."""
    k = np.log(f1 / f0) / duration
    tau = np.clip(t - start, 0.0, duration)
    return np.sin(2 * np.pi * f0 * np.expm1(k * tau) / k) * _envelope(t, start, duration)


def _tone(t: np.ndarray, f: float, start: float, duration: float) -> np.ndarray:
    return np.sin(2 * np.pi * f * t) * _envelope(t, start, duration)


def make_clip(task: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One clean clip for `task` and the word that answers its question."""
    n = int(SAMPLE_RATE * CLIP_SECONDS)
    t = np.arange(n) / SAMPLE_RATE
    u = rng.uniform
    if task == "direction":
        answer = rng.choice(TASKS[task][1])
        low = u(250, 700)
        high = low * u(2.5, 4.0)
        duration = u(0.25, 0.4)
        start = u(0.02, CLIP_SECONDS - duration - 0.02)
        f0, f1 = (low, high) if answer == "rising" else (high, low)
        x = _sweep(t, f0, f1, start, duration)
    elif task == "count":
        k = int(rng.integers(1, 5))
        answer = TASKS[task][1][k - 1]
        beep, gap, f = u(0.04, 0.06), u(0.045, 0.07), u(600, 2500)
        start = u(0.01, CLIP_SECONDS - k * beep - (k - 1) * gap - 0.01)
        x = sum(_tone(t, f, start + i * (beep + gap), beep) for i in range(k))
    elif task == "order":
        answer = rng.choice(TASKS[task][1])
        tones = [u(200, 500), u(1500, 3500)]
        if answer == "high":
            tones.reverse()
        duration, gap = u(0.12, 0.18), u(0.02, 0.06)
        start = u(0.01, CLIP_SECONDS - 2 * duration - gap - 0.01)
        x = _tone(t, tones[0], start, duration) + _tone(t, tones[1], start + duration + gap, duration)
    elif task == "kind":
        answer = rng.choice(TASKS[task][1])
        duration = u(0.2, 0.4)
        start = u(0.02, CLIP_SECONDS - duration - 0.02)
        if answer == "tone":
            x = _tone(t, u(300, 3000), start, duration)
        elif answer == "chirp":
            f0 = u(300, 1000)
            f1 = f0 * u(2.0, 4.0)
            x = _sweep(t, f0, f1, start, duration) if rng.random() < 0.5 else _sweep(t, f1, f0, start, duration)
        elif answer == "noise":
            x = rng.standard_normal(n) * 0.5 * _envelope(t, start, duration)
        else:  # a click train at 15-40 clicks per second
            rate = u(15, 40)
            clicks = np.zeros(n)
            clicks[(SAMPLE_RATE * np.arange(start, start + duration, 1 / rate)).astype(int)] = 1.0
            x = np.convolve(clicks, np.hanning(16), mode="same")
    elif task == "level":
        answer = rng.choice(TASKS[task][1])
        f = {"low": u(150, 350), "middle": u(700, 1400), "high": u(2500, 5000)}[answer]
        duration = u(0.2, 0.4)
        start = u(0.02, CLIP_SECONDS - duration - 0.02)
        x = _tone(t, f, start, duration)
    else:
        raise ValueError(f"task: expected one of {', '.join(TASKS)}, got {task!r}")
    x = x / (np.abs(x).max() + 1e-9) * u(0.05, 0.5)
    return x.astype(np.float32), str(answer)


def make_noise(
    kind: str, n: int, rng: np.random.Generator, pool: np.ndarray | None = None, exclude: int | None = None
) -> np.ndarray:
    """`n` samples of noise of type `kind` (one of NOISE_TYPES); babble mixes 4-6 random clips of `pool` [m, n]
    (all of them when it has fewer), circularly shifted, leaving out clip `exclude` (the clip being corrupted)."""
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind == "coloured":  # power spectrum ~ 1/f^alpha, pink (1) to brown (2)
        spectrum = np.fft.rfft(rng.standard_normal(n))
        f = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 20.0)
        x = np.fft.irfft(spectrum / f ** (rng.uniform(1.0, 2.0) / 2), n)
    elif kind == "babble":
        others = np.delete(np.arange(len(pool)), [] if exclude is None else [exclude])
        picks = rng.choice(others, size=min(len(others), int(rng.integers(4, 7))), replace=False)
        x = sum(np.roll(pool[i], int(rng.integers(n))) * rng.uniform(0.5, 1.0) for i in picks)
    elif kind == "hum":  # mains hum: a 48-62 Hz fundamental with 12 decaying harmonics
        t = np.arange(n) / SAMPLE_RATE
        f0, decay = rng.uniform(48, 62), rng.uniform(0.5, 1.5)
        x = sum(np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi)) / h**decay for h in range(1, 13))
    elif kind == "impulsive":  # 3-10 bursts of 1-15 ms with exponential decay
        x = np.zeros(n)
        for _ in range(int(rng.integers(3, 11))):
            length = int(SAMPLE_RATE * rng.uniform(0.001, 0.015))
            start = int(rng.integers(0, n - length))
            decay = np.exp(-np.arange(length) / (length / 3))
            x[start : start + length] += rng.standard_normal(length) * decay * rng.uniform(0.2, 1.0)
    else:
        raise ValueError(f"noise: expected one of {', '.join(NOISE_TYPES)}, got {kind!r}")
    return np.asarray(x, dtype=np.float32)


def mix(clean: torch.Tensor, noise: torch.Tensor, snr_db) -> torch.Tensor:
    """clean + noise scaled so that 10 log10(|clean|^2 / |scaled noise|^2) = snr_db, per row of [..., time]."""
    snr = torch.as_tensor(snr_db, dtype=clean.dtype).expand(clean.shape[:-1])
    return torchaudio.functional.add_noise(clean, noise, snr)


def make_split(n_clips: int, seed: int, snrs=SNRS, tasks=tuple(TASKS)):
    """A `datasets.Dataset` of `n_clips` clips: question, choices, answer and the clean waveform, and (when `snrs`
    is not empty) one noisy version per SNR, paired with the clean one ("noisy" [len(snrs), time]) and the noise type
    of each. Tasks cycle through `tasks`; choices are shuffled; noise types are drawn at random."""
    import datasets

    rng = np.random.default_rng(seed)
    rows = {"task": [], "question": [], "choices": [], "answer": [], "clean": []}
    for i in range(n_clips):
        task = tasks[i % len(tasks)]
        wave, word = make_clip(task, rng)
        choices = list(rng.permutation(TASKS[task][1]))
        offered = " ".join(f"{letter} {word}" for letter, word in zip(LETTERS, choices))
        rows["task"].append(task)
        rows["question"].append(f"{TASKS[task][0]} {offered}")
        rows["choices"].append([str(c) for c in choices])
        rows["answer"].append(f"{LETTERS[choices.index(word)]} {word}")
        rows["clean"].append(wave)
    features = {
        "task": datasets.Value("string"),
        "question": datasets.Value("string"),
        "choices": datasets.Sequence(datasets.Value("string")),
        "answer": datasets.Value("string"),
        "clean": datasets.Sequence(datasets.Value("float32")),
    }
    if snrs:
        clean = np.stack(rows["clean"])
        kinds = rng.choice(NOISE_TYPES, size=(n_clips, len(snrs)))
        noise = np.stack(
            [[make_noise(k, clean.shape[1], rng, clean, exclude=i) for k in row] for i, row in enumerate(kinds)]
        )
        noisy = mix(torch.from_numpy(clean)[:, None].expand(noise.shape), torch.from_numpy(noise), list(snrs))
        rows["noisy"] = list(noisy.numpy())
        rows["snr"] = [list(snrs)] * n_clips
        rows["noise"] = [list(map(str, k)) for k in kinds]
        features["noisy"] = datasets.Array2D((len(snrs), clean.shape[1]), "float32")
        features["snr"] = datasets.Sequence(datasets.Value("int32"))
        features["noise"] = datasets.Sequence(datasets.Value("string"))
    return datasets.Dataset.from_dict(rows, features=datasets.Features(features))


class LogMel(torch.nn.Module):
    """Log-mel features in [0, 1]: dB relative to the clip's loudest bin, floored `top_db` below it.

    Referencing the loudest bin makes the features independent of level; the floor hides noise more than `top_db`
    below the signal, so high-SNR audio looks almost clean and the degradation grows as the SNR falls.
    """

    def __init__(self, n_mels: int = 32, hop: int = 320, top_db: float = 45.0):
        super().__init__()
        self.top_db = top_db
        self.mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=512, hop_length=hop, n_mels=n_mels)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:  # [..., time] -> [..., n_mels, frames]
        db = 10 * torch.log10(self.mel(wave) + 1e-10)
        db = db - db.amax(dim=(-2, -1), keepdim=True)
        return db.clamp(min=-self.top_db) / self.top_db + 1
