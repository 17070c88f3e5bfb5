"""What the reference loops share: seeds, the on-disk model cache, local metrics, evaluation mode."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import torch

METRICS_DIR = Path(__file__).parent / "metrics"


def cache_dir() -> Path:
    """Where trained teachers and warm-started students live: $EFFOPT_CACHE or ~/.cache/effopt."""
    return Path(os.environ.get("EFFOPT_CACHE", Path.home() / ".cache" / "effopt"))


def set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def config_key(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached_state_dict(kind: str, config: dict, build: Callable[[], dict]) -> dict:
    """Return the state dict that `build()` makes for `config`, training it only when the cache lacks it.

    The file is named by a hash of `config` and also stores `config`, so a file whose config does not match, or that
    cannot be read, is reported with a warning and rebuilt; it is never used silently. Writes are atomic (a temporary
    file in the same folder, then a rename), so an interrupted run never leaves a half-written checkpoint.
    """
    path = cache_dir() / f"{kind}-{config_key(config)}.pt"
    if path.exists():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("config") == json.loads(json.dumps(config, default=str)):
                return saved["state_dict"]
            warnings.warn(f"cache file {path} was made for another config; rebuilding it", stacklevel=2)
        except Exception as err:  # a truncated or foreign file
            warnings.warn(f"cache file {path} is unreadable ({err!r}); rebuilding it", stacklevel=2)
    state_dict = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"config": json.loads(json.dumps(config, default=str)), "state_dict": state_dict}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return state_dict


def load_metric(name: str):
    """An `evaluate` metric shipped in reference/metrics/, loaded by path (hub names fail offline)."""
    import evaluate

    return evaluate.load(str(METRICS_DIR / name))


@contextlib.contextmanager
def evaluating(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None):
    """Evaluation mode for the model and, where it has one (schedule-free), for the optimizer; restored after."""
    was_training = model.training
    model.eval()
    if optimizer is not None and hasattr(optimizer, "eval"):
        optimizer.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if optimizer is not None and hasattr(optimizer, "train"):
            optimizer.train()
        model.train(was_training)
