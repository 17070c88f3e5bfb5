"""What the reference loops share: seeds, the on-disk model cache, local metrics, evaluation mode."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import random
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

if TYPE_CHECKING:
    import datasets

METRICS_DIR = Path(__file__).parent / "metrics"


def cache_dir() -> Path:
    """Where trained teachers and warm-started students live: $EFFOPT_CACHE or ~/.cache/effopt."""
    return Path(os.environ.get("EFFOPT_CACHE", Path.home() / ".cache" / "effopt"))


def set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


class ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` shows every option's default, whether or not the option has a help text."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" not in text and action.option_strings and action.default is not argparse.SUPPRESS:
            text += " (default: %(default)s)"
        return text


def sync(device) -> None:
    """Wait for the device, so that a clock read after it counts the work queued before it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def config_key(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached_state_dict(
    kind: str, config: dict, build: Callable[[], dict], check: Callable[[dict], None] | None = None
) -> dict:
    """Return the state dict that `build()` makes for `config`, training it only when the cache lacks it.

    The file is named by a hash of `config` and also stores `config`, so a file whose config does not match, or that
    cannot be read, is reported with a warning and rebuilt; it is never used silently. `check` (default None: no
    check), when given, is called on a loaded state dict and raises if it does not fit (for example
    `model.load_state_dict`); such a file is rebuilt too. Writes are atomic (a temporary file in the same folder,
    then a rename), so an interrupted run never leaves a half-written checkpoint.
    """
    path = cache_dir() / f"{kind}-{config_key(config)}.pt"
    if path.exists():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("config") == json.loads(json.dumps(config, default=str)):
                if check is not None:
                    check(saved["state_dict"])
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


def cached_dataset(kind: str, config: dict, build: Callable[[], "datasets.DatasetDict"]) -> "datasets.DatasetDict":
    """The `datasets.DatasetDict` that `build()` makes for `config`, generated only when the cache lacks it.

    Like `cached_state_dict`: a folder named by a hash of `config` holds the data (`save_to_disk`) and the config;
    an unreadable folder, or one made for another config, is reported with a warning and rebuilt. The folder is
    written under a temporary name and then renamed, so a reader never sees a half-written one.
    """
    import datasets

    path = cache_dir() / f"{kind}-{config_key(config)}"
    wanted = json.loads(json.dumps(config, default=str))
    if path.exists():
        try:
            if json.loads((path / "effopt_config.json").read_text()) == wanted:
                return datasets.load_from_disk(str(path))
            warnings.warn(f"cache folder {path} was made for another config; rebuilding it", stacklevel=2)
        except Exception as err:  # a partly deleted or foreign folder
            warnings.warn(f"cache folder {path} is unreadable ({err!r}); rebuilding it", stacklevel=2)
    data = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=path.name, suffix=".tmp"))
    try:
        bars_were_on = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # "Saving the dataset" bars, one per split
        try:
            data.save_to_disk(str(tmp))
        finally:
            if bars_were_on:
                datasets.enable_progress_bars()
        (tmp / "effopt_config.json").write_text(json.dumps(wanted, sort_keys=True))
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
        try:
            os.replace(tmp, path)
        except OSError:  # another process renamed its copy first: theirs is as good as ours
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return datasets.load_from_disk(str(path))


def load_metric(name: str):
    """An `evaluate` metric shipped in reference/metrics/, loaded by path (hub names fail offline)."""
    import evaluate

    return evaluate.load(str(METRICS_DIR / name))


def run_result(cfg, curve: list[dict], optimizer, train_seconds: float, device, **extra) -> dict:
    """What every reference loop returns (and its command line writes as JSON): the config, the curve (step 0
    first), the metric at both ends, the optimizer's extrapolation events (if it has any), training seconds, device."""
    return {
        "config": dataclasses.asdict(cfg),
        "initial_metric": curve[0]["metric"],
        "final_metric": curve[-1]["metric"],
        "curve": curve,
        "events": list(getattr(optimizer, "events", [])),
        "train_seconds": train_seconds,
        "device": str(device),
        **extra,
    }


def last_event(optimizer) -> str:
    """The optimizer's last extrapolation event for a progress line, e.g. "x2.31 at step 40" ("" without events)."""
    events = getattr(optimizer, "events", [])
    return f"x{events[-1]['accepted']:.2f} at step {events[-1]['step']}" if events else ""


def group_advantages(reward: torch.Tensor) -> torch.Tensor:
    """GRPO advantages: rewards [B, K] standardised within each group of K (0 where all K agree)."""
    return (reward - reward.mean(1, keepdim=True)) / (reward.std(1, keepdim=True) + 1e-4)


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


# --- Shared by several loops (kept at the end of the file) ------------------------------------------------------------


def through_first(tokens: torch.Tensor, stop: int) -> torch.Tensor:
    """1.0 on each row's tokens (last dimension) up to and including its first `stop` token, 0.0 after it: the mask of
    a completion or an answer that ends at its first <eos>."""
    is_stop = (tokens == stop).long()
    return ((is_stop.cumsum(-1) - is_stop) == 0).float()


def kl_over_vocab(p_logp: torch.Tensor, q_logp: torch.Tensor) -> torch.Tensor:
    """KL(p || q) over the vocabulary (last dimension) from log-probs: sum_v p(v) (log p(v) - log q(v)). With p the
    student it is OPD's reverse KL; with p the teacher, EchoDistill's forward KL."""
    return (p_logp.exp() * (p_logp - q_logp)).sum(-1)


def write_json(path, data, indent: int = 1) -> None:
    """Writes `data` as JSON to `path` atomically (a temporary file in the same folder, then a rename), making the
    folder if needed: a reader never sees a half-written file, and an interrupted run leaves the old file whole."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(data, file, indent=indent)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
