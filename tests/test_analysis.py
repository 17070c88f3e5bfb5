"""effopt.analysis recovers known rank and known alignment on synthetic updates."""

import math

import pytest
import torch

from effopt.analysis import alignment, summarize, update_profile


def orthonormal(rows, cols, seed):
    q, _ = torch.linalg.qr(torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def test_a_rank_two_update_has_all_its_energy_in_two_directions():
    start = {"w": torch.randn(30, 20, dtype=torch.float64), "b": torch.zeros(20)}
    u, v = orthonormal(30, 2, 0), orthonormal(20, 2, 1)
    update = u @ torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64)) @ v.T
    profile = update_profile(start, {"w": start["w"] + update, "b": start["b"] + 1}, k=2)
    assert profile["w"]["energy_k"] == pytest.approx(1.0)
    assert profile["w"]["spectral_ratio"] == pytest.approx(3 / math.sqrt(10))
    assert 1 < profile["w"]["effective_rank"] < 2
    assert profile["w"]["norm"] == pytest.approx(math.sqrt(10))
    assert profile["w"]["relative_norm"] == pytest.approx(math.sqrt(10) / start["w"].norm().item())
    assert set(profile["b"]) == {"norm", "relative_norm"}  # vectors have no spectrum


def test_rank_one_gives_effective_rank_one_and_noise_spreads_it():
    start = {"w": torch.zeros(40, 40, dtype=torch.float64)}
    rank_one = orthonormal(40, 1, 2) @ orthonormal(40, 1, 3).T
    assert update_profile(start, {"w": rank_one})["w"]["effective_rank"] == pytest.approx(1.0)
    noise = torch.randn(40, 40, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert update_profile(start, {"w": noise}, k=1)["w"]["effective_rank"] > 10


def test_randomized_path_for_large_matrices_finds_the_top_energy():
    start = {"w": torch.zeros(300, 200, dtype=torch.float64)}
    update = orthonormal(300, 1, 5) @ orthonormal(200, 1, 6).T * 5
    row = update_profile(start, {"w": update}, k=1, exact_limit=1000)["w"]
    assert row["energy_k"] == pytest.approx(1.0, abs=1e-6) and row["effective_rank"] is None


def test_alignment_identical_directions_and_orthogonal_subspaces():
    start = {"w": torch.zeros(10, 8, dtype=torch.float64)}
    basis = orthonormal(10, 4, 7)
    v = orthonormal(8, 2, 8)
    early = basis[:, :2] @ v.T
    same = alignment(start, {"w": early}, {"w": 3 * early}, k=2)["w"]
    assert same["cosine"] == pytest.approx(1.0)
    assert same["principal_angles"] == pytest.approx([0.0, 0.0], abs=1e-5)
    other = basis[:, 2:] @ v.T  # a column space orthogonal to the early one
    orthogonal = alignment(start, {"w": early}, {"w": other}, k=2)["w"]
    assert orthogonal["cosine"] == pytest.approx(0.0, abs=1e-12)
    assert orthogonal["principal_angles"] == pytest.approx([90.0, 90.0])


def test_bad_k_is_named():
    with pytest.raises(ValueError, match="k"):
        update_profile({}, {}, k=0)
    with pytest.raises(ValueError, match="k"):
        alignment({}, {}, {}, k=0)


def test_summarize_gives_whole_model_figures_that_match_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    start = {name: torch.randn(12, 10, generator=g, dtype=torch.float64) for name in ("a", "b", "c")}
    start["bias"] = torch.zeros(10, dtype=torch.float64)
    u, v = orthonormal(12, 1, 2), orthonormal(10, 1, 3)
    updates = {
        "a": 5 * u @ v.T,
        "b": 0.1 * torch.randn(12, 10, generator=g, dtype=torch.float64),
        "c": torch.zeros(12, 10, dtype=torch.float64),
        "bias": torch.ones(10, dtype=torch.float64),
    }
    final = {name: start[name] + updates[name] for name in start}
    early = {name: start[name] + 0.5 * updates[name] for name in start}  # the same direction, half way
    early["b"] = start["b"] - 0.5 * updates["b"]  # except one tensor, which starts the other way
    profile = update_profile(start, final, k=1)
    figures = summarize(profile, alignment(start, early, final, k=1), top=0.25)
    squares = {name: float(t.norm() ** 2) for name, t in updates.items()}
    total = sum(squares.values())
    assert figures["top_share"] == pytest.approx(squares["a"] / total)  # 1 of 4 tensors: the largest
    # "a" is rank 1 (energy 1); "b" is noise (energy about 1/10); "c" did not move and has no spectrum
    energy_b = profile["b"]["energy_k"]
    want = (squares["a"] + energy_b * squares["b"]) / (squares["a"] + squares["b"])
    assert figures["energy_k"] == pytest.approx(want)
    flat_early = torch.cat([(early[n] - start[n]).flatten() for n in start])
    flat_final = torch.cat([(final[n] - start[n]).flatten() for n in start])
    want = torch.nn.functional.cosine_similarity(flat_early, flat_final, dim=0)
    assert figures["cosine"] == pytest.approx(float(want))
    assert figures["cosine"] < 1  # the reversed tensor shows
    # angles: "a" 0 degrees; "b" 0 too (a subspace does not care about sign); weighted mean 0
    assert figures["principal_angle"] == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="top"):
        summarize(profile, top=0)
