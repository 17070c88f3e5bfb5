"""What the reference loops share: seeds, the shipped instances and the on-disk model cache, local metrics,
evaluation mode."""

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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import datasets

METRICS_DIR = Path(__file__).parent / "metrics"
#: Built task instances shipped with the project (safetensors, listed with their SHA-256 in MANIFEST.json): training
#: amplifies the last bits in which CPUs' kernels differ, so a teacher built here and one built on another CPU are
#: other models. A shipped instance is the same on every machine; `cached_state_dict` uses it before any build.
SHIPPED_DIR = Path(__file__).parent / "shipped"


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


def _flatten(tree: dict, prefix: str = "") -> tuple[dict, dict]:
    """(tensors, everything else) of a nested dict, keyed by "/"-joined paths: what safetensors can and cannot hold."""
    tensors, extra = {}, {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            more_tensors, more_extra = _flatten(value, path + "/")
            tensors |= more_tensors
            extra |= more_extra
        elif torch.is_tensor(value):
            tensors[path] = value.detach().cpu().contiguous()
        else:
            extra[path] = value
    return tensors, extra


def _unflatten(flat: dict) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return tree


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dataset_digest(data: datasets.DatasetDict) -> str:
    """SHA-256 of a DatasetDict's contents (every split, column and value, in order), independent of how it is stored
    on disk: what says two builds of the same data agree."""
    digest = hashlib.sha256()
    for split in sorted(data):
        columns = data[split][:]  # every column as a list
        for column in sorted(columns):
            digest.update(json.dumps([split, column, columns[column]]).encode())
    return digest.hexdigest()


def shipped_manifest() -> dict:
    path = SHIPPED_DIR / "MANIFEST.json"
    return json.loads(path.read_text()) if path.exists() else {"files": {}}


def write_shipped(kind: str, config: dict, state: dict, folder: Path = SHIPPED_DIR) -> Path:
    """Save `state` (a dict of tensors, possibly nested, with JSON-able leaves beside them) as the shipped instance of
    (kind, config): `<kind>-<config_key>.safetensors`, the config and non-tensor leaves in its metadata."""
    from safetensors.torch import save_file

    tensors, extra = _flatten(state)
    wanted = json.loads(json.dumps(config, default=str))
    path = folder / f"{kind}-{config_key(config)}.safetensors"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        tensors,
        str(path),
        metadata={"config": json.dumps(wanted, sort_keys=True), "extra": json.dumps(extra, sort_keys=True)},
    )
    return path


def load_shipped(kind: str, config: dict) -> dict | None:
    """The shipped instance of (kind, config), or None where none is shipped, $EFFOPT_IGNORE_SHIPPED is set, or the
    file's SHA-256 or config disagrees with MANIFEST.json (then with a warning, and the caller builds it)."""
    if os.environ.get("EFFOPT_IGNORE_SHIPPED"):
        return None
    name = f"{kind}-{config_key(config)}.safetensors"
    listed, path = shipped_manifest()["files"].get(name), SHIPPED_DIR / name
    if listed is None or not path.exists():
        return None
    from safetensors import safe_open

    digest = sha256_file(path)
    if digest != listed["sha256"]:
        warnings.warn(
            f"shipped instance {path} has SHA-256 {digest}, MANIFEST.json says {listed['sha256']}: not "
            "using it (building instead)",
            stacklevel=3,
        )
        return None
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
        if json.loads(metadata["config"]) != json.loads(json.dumps(config, default=str)):
            warnings.warn(f"shipped instance {path} was made for another config: not using it", stacklevel=3)
            return None
        flat = {key: file.get_tensor(key) for key in file.keys()} | json.loads(metadata["extra"])
    return _unflatten(flat)


def cached_state_dict(
    kind: str, config: dict, build: Callable[[], dict], check: Callable[[dict], None] | None = None
) -> dict:
    """Return the state dict that `build()` makes for `config`: the shipped instance where one is (`load_shipped`),
    else from the on-disk cache, training it only when the cache lacks it.

    The cache file is named by a hash of `config` and also stores `config`, so a file whose config does not match, or
    that cannot be read, is reported with a warning and rebuilt; it is never used silently. `check` (default None: no
    check), when given, is called on a loaded state dict and raises if it does not fit (for example
    `model.load_state_dict`); such a file is rebuilt too. Writes are atomic (a temporary file in the same folder,
    then a rename), so an interrupted run never leaves a half-written checkpoint.
    """
    shipped = load_shipped(kind, config)
    if shipped is not None:
        if check is not None:
            check(shipped)
        return shipped
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


def cached_dataset(kind: str, config: dict, build: Callable[[], datasets.DatasetDict]) -> datasets.DatasetDict:
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


def show_progress(bar, point: dict, optimizer) -> None:
    """An OPD loop's progress bar after an evaluation: the metric, the rollouts' KL, the retained skill, the last event."""
    event = {"event": last_event(optimizer)} if last_event(optimizer) else {}
    bar.set_postfix(
        metric=f"{point['metric']:.3f}", kl=f"{point['loss']:.4f}", retained=f"{point['retained']:.3f}", **event
    )


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
