"""The shipped task instances: every machine loads the same bits, a damaged file is refused (and built instead), and the
benchmark's quick tasks start from them without training anything."""

import json
import warnings

import pytest
import torch

from reference import common
from reference.common import SHIPPED_DIR, cached_state_dict, config_key, load_shipped, sha256_file, write_shipped

MANIFEST = json.loads((SHIPPED_DIR / "MANIFEST.json").read_text())


def test_every_shipped_file_has_the_manifests_sha256_and_is_named_by_its_config():
    assert MANIFEST["files"], "no shipped instances"
    for name, listed in MANIFEST["files"].items():
        path = SHIPPED_DIR / name
        assert sha256_file(path) == listed["sha256"], f"{name} differs from the one that was shipped"
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as file:
            config = json.loads(file.metadata()["config"])
        assert name == f"{listed['kind']}-{config_key(config)}.safetensors"
        assert load_shipped(listed["kind"], config) is not None


def test_three_instances_of_each_world_are_shipped():
    kinds = [listed["kind"] for listed in MANIFEST["files"].values()]
    # per task seed: a teacher and two students (near-teacher, far); EchoDistill: one data set, a model per model seed
    assert kinds.count("opd-teacher") == 3 and kinds.count("opd-student") == 6
    assert kinds.count("echodistill-model") == 3 and kinds.count("echodistill-data") == 1
    assert sum(listed["bytes"] for listed in MANIFEST["files"].values()) < 32 * 2**20


@pytest.fixture
def shipped_here(tmp_path, monkeypatch):
    """A shipped folder of one's own, with a manifest listing what `ship` puts there."""
    folder = tmp_path / "shipped"
    monkeypatch.setattr(common, "SHIPPED_DIR", folder)
    monkeypatch.setenv("EFFOPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EFFOPT_IGNORE_SHIPPED", raising=False)

    def ship(kind, config, state):
        path = write_shipped(kind, config, state, folder)
        manifest = common.shipped_manifest()
        manifest["files"][path.name] = {"kind": kind, "sha256": sha256_file(path)}
        (folder / "MANIFEST.json").write_text(json.dumps(manifest))
        return path

    return ship


def test_a_shipped_instance_round_trips_nested_tensors_and_plain_values(shipped_here):
    state = {
        "train": {"clean": torch.arange(6, dtype=torch.uint8).view(2, 3), "text": ["a b", "c d"]},
        "w": torch.randn(3, 2),
    }
    shipped_here("thing", {"seed": 0}, state)

    def build():
        raise AssertionError("a shipped instance must not be built")

    loaded = cached_state_dict("thing", {"seed": 0}, build)
    assert torch.equal(loaded["w"], state["w"]) and torch.equal(loaded["train"]["clean"], state["train"]["clean"])
    assert loaded["train"]["clean"].dtype == torch.uint8 and loaded["train"]["text"] == ["a b", "c d"]
    assert load_shipped("thing", {"seed": 1}) is None  # another config: not shipped


def test_a_damaged_shipped_file_is_refused_with_a_warning_and_built_instead(shipped_here, monkeypatch):
    path = shipped_here("thing", {"seed": 0}, {"w": torch.zeros(4)})
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="SHA-256"):
        built = cached_state_dict("thing", {"seed": 0}, lambda: {"w": torch.ones(4)})
    assert torch.equal(built["w"], torch.ones(4))
    monkeypatch.setenv("EFFOPT_IGNORE_SHIPPED", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_shipped("thing", {"seed": 0}) is None  # building on purpose is no warning


def _no_training(*args, **kwargs):
    raise AssertionError("the quick instance was trained instead of loaded from reference/shipped/")


@pytest.mark.parametrize("instance", [0, 2])
def test_the_quick_opd_worlds_load_shipped_meet_the_tasks_definition_and_their_data_is_exact(
    instance, monkeypatch, tmp_path
):
    import datasets

    from benchmarks.loops import opd_task_seed
    from reference import opd
    from reference.ship import opd_shortfalls

    monkeypatch.setenv("EFFOPT_CACHE", str(tmp_path))
    monkeypatch.setattr(opd, "_supervised", _no_training)
    task_seed = opd_task_seed(instance, "quick")
    assert task_seed == MANIFEST["opd_task_seeds"][instance]
    # every model reached its recipe's target (a build that fell short is not shipped, and says why in the manifest)
    assert opd_shortfalls(task_seed) == [] and all(MANIFEST["rejected"][seed] for seed in MANIFEST["rejected"])
    # OPD's data is built, not shipped: Python's random generator and the tokenizer give the same bits everywhere
    built = {
        path.name: common.dataset_digest(datasets.load_from_disk(str(path)))
        for path in tmp_path.iterdir()
        if (path / "effopt_config.json").exists()
    }
    assert built and all(MANIFEST["portable"][name] == digest for name, digest in built.items())


def test_the_quick_echodistill_instances_load_shipped(monkeypatch, tmp_path):
    from reference import echodistill

    monkeypatch.setenv("EFFOPT_CACHE", str(tmp_path))
    monkeypatch.setattr(echodistill, "build_data", _no_training)
    monkeypatch.setattr(echodistill, "pretrain", _no_training)
    task = echodistill.prepare(echodistill.EchoConfig(size="quick", model_seed=1, device="cpu"))
    clean = task.splits["eval"]["clean"]
    assert clean.dtype == torch.float32 and 0 <= clean.min() and clean.max() <= 1
    assert torch.allclose(clean * 255, (clean * 255).round(), atol=1e-3)  # the shipped uint8 steps
