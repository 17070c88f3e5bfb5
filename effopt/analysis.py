"""Measure the "foresight" that makes extrapolation work: where updates go, how low-rank they are, and how early
their direction matches the final one. Torch only; works on state dicts (or `model.state_dict()` and an anchor).

    from effopt.analysis import update_profile, alignment
    profile = update_profile(start_state, end_state)           # per tensor: norms, low-rank concentration
    early = alignment(start_state, step50_state, end_state)    # per tensor: cosine, principal angles
    summarize(profile, early)                                  # whole-model figures from both

An *update* is ``after - before`` of one tensor. For a matrix ``U`` (a tensor of more than two dimensions is read as
``(shape[0], -1)``) with singular values ``s_1 >= s_2 >= ...``:

- ``energy_k = sum_{i<=k} s_i^2 / sum_i s_i^2``: the share of the update in its top-``k`` directions (1 for rank <= k);
- ``effective_rank = exp(H(p))`` with ``p_i = s_i^2 / sum s^2`` (Roy and Vetterli): 1 for a rank-1 update;
- ``spectral_ratio = s_1 / ||U||_F``, in ``(0, 1]``.

Cost: an exact ``torch.linalg.svdvals`` per matrix up to ``exact_limit`` elements (``O(m n min(m, n))``); beyond it the
top singular values come from the randomized ``torch.svd_lowrank`` (``O(m n (k + 8))`` per power iteration, 2 by
default) and the entropy-based effective rank is left out (None), since it needs the whole spectrum.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

__all__ = ["alignment", "summarize", "update_profile"]


def _matrix(t: torch.Tensor) -> torch.Tensor | None:
    return t.reshape(t.shape[0], -1).double() if t.dim() >= 2 else None


def _top_singular(matrix: torch.Tensor, k: int, exact_limit: int) -> tuple[torch.Tensor, bool]:
    """Singular values (all of them if exact, else the top k + a few) and whether they are the whole spectrum."""
    if matrix.numel() <= exact_limit:
        return torch.linalg.svdvals(matrix), True
    with torch.random.fork_rng(devices=[matrix.device.index or 0] if matrix.device.type == "cuda" else []):
        torch.manual_seed(0)
        _, s, _ = torch.svd_lowrank(matrix, q=min(k + 8, *matrix.shape), niter=2)
    return s, False


def update_profile(
    before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], k: int = 4, exact_limit: int = 1 << 22
) -> dict[str, dict[str, Any]]:
    """Per tensor (floating tensors present in both): ``norm`` of the update, ``relative_norm`` (over the norm of
    ``before``) and, for matrices, ``energy_k``, ``effective_rank`` and ``spectral_ratio``.

    Args:
        before, after: state dicts (name -> tensor) of the same model at two points of training.
        k: the number of top directions in ``energy_k`` (default 4).
        exact_limit: matrices with at most this many elements get an exact SVD (default 4M).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: expected a positive int, got {k!r}")
    profile = {}
    for name, start in before.items():
        end = after.get(name)
        if end is None or not start.is_floating_point() or start.shape != end.shape:
            continue
        update = end.detach().double() - start.detach().double()
        norm = update.norm().item()
        row = {"norm": norm, "relative_norm": norm / max(start.double().norm().item(), 1e-30)}
        matrix = _matrix(update)
        if matrix is not None and norm > 0:
            s, whole = _top_singular(matrix, k, exact_limit)
            total = norm**2
            row["energy_k"] = min(1.0, (s[:k] ** 2).sum().item() / total)
            row["spectral_ratio"] = s[0].item() / norm
            p = s**2 / (s**2).sum()
            row["effective_rank"] = math.exp(-(p * p.clamp_min(1e-300).log()).sum().item()) if whole else None
        profile[name] = row
    return profile


def alignment(
    start: dict[str, torch.Tensor], early: dict[str, torch.Tensor], final: dict[str, torch.Tensor], k: int = 4
) -> dict[str, dict[str, Any]]:
    """How well the early update ``early - start`` points where the final one ``final - start`` goes, per tensor:
    ``cosine`` of the flattened updates, their ``norms`` (early, final) and, for matrices, the ``principal_angles``
    (degrees, ascending) between
    their top-``k`` left singular subspaces (0 = the same subspace, 90 = orthogonal).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: expected a positive int, got {k!r}")
    result = {}
    for name, s in start.items():
        if name not in early or name not in final or not s.is_floating_point():
            continue
        u_early = early[name].detach().double() - s.detach().double()
        u_final = final[name].detach().double() - s.detach().double()
        denominator = u_early.norm() * u_final.norm()
        row = {
            "cosine": (u_early.flatten() @ u_final.flatten() / denominator).item() if denominator > 0 else None,
            "norms": (u_early.norm().item(), u_final.norm().item()),
        }
        a, b = _matrix(u_early), _matrix(u_final)
        if a is not None and denominator > 0:
            r = min(k, *a.shape)
            qa = torch.linalg.svd(a, full_matrices=False)[0][:, :r]
            qb = torch.linalg.svd(b, full_matrices=False)[0][:, :r]
            cosines = torch.linalg.svdvals(qa.T @ qb).clamp(-1.0, 1.0)
            row["principal_angles"] = sorted(math.degrees(math.acos(c)) for c in cosines.tolist())
        result[name] = row
    return result


def summarize(
    profile: dict[str, dict[str, Any]], aligned: dict[str, dict[str, Any]] | None = None, top: float = 0.1
) -> dict[str, Any]:
    """Whole-model figures from :func:`update_profile` rows (and :func:`alignment` rows, if given).

    - ``top_share``: the share of the update's squared norm in the largest ``top`` fraction of tensors (at least one):
      how much the update concentrates on a few modules;
    - ``energy_k``: the share of all matrices' squared update norm that lies in each matrix's own top-k directions
      (the norm-weighted mean of their ``energy_k``): how low-rank the update is, as a whole;
    - ``effective_rank``: the median over matrices (None when any is unknown);
    - ``cosine`` (with ``aligned``): the cosine of the whole early and final updates, every tensor flattened into one;
    - ``principal_angle`` (with ``aligned``): the mean top-k principal angle, weighted by each matrix's share of the
      final update's squared norm (degrees).
    """
    if not 0 < top <= 1:
        raise ValueError(f"top: expected a fraction in (0, 1], got {top!r}")
    squares = sorted((row["norm"] ** 2 for row in profile.values()), reverse=True)
    total = sum(squares)
    count = max(1, math.ceil(top * len(squares)))
    matrices = [row for row in profile.values() if "energy_k" in row]
    weight = sum(row["norm"] ** 2 for row in matrices)
    ranks = sorted(row["effective_rank"] for row in matrices) if all(row["effective_rank"] for row in matrices) else []
    out = {
        "top_share": sum(squares[:count]) / total if total > 0 else None,
        "energy_k": sum(row["energy_k"] * row["norm"] ** 2 for row in matrices) / weight if weight > 0 else None,
        "effective_rank": ranks[len(ranks) // 2] if ranks else None,
    }
    if aligned is not None:
        rows = aligned.values()
        dot = sum(row["cosine"] * row["norms"][0] * row["norms"][1] for row in rows if row["cosine"] is not None)
        early = math.sqrt(sum(row["norms"][0] ** 2 for row in aligned.values()))
        final = math.sqrt(sum(row["norms"][1] ** 2 for row in aligned.values()))
        out["cosine"] = dot / (early * final) if early > 0 and final > 0 else None
        angled = [row for row in aligned.values() if "principal_angles" in row]
        mass = sum(row["norms"][1] ** 2 for row in angled)
        out["principal_angle"] = (
            sum(statistics.fmean(row["principal_angles"]) * row["norms"][1] ** 2 for row in angled) / mass
            if mass > 0
            else None
        )
    return out
