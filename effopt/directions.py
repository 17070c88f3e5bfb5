"""Which direction: ``direction(deltas, step)`` may rewrite, in place, the accumulated updates ``delta = theta -
anchor`` of one chunk of tensors (identity for :class:`Accumulated`); any callable with that signature works."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["Accumulated", "LowRank"]


class Accumulated:
    """The update accumulated since the anchor, ``theta - anchor``, as published."""

    def __call__(self, deltas: Sequence[torch.Tensor], step: int) -> None:
        pass

    def __repr__(self) -> str:
        return "Accumulated()"


class LowRank:
    """The accumulated update of each weight matrix projected onto its top-``rank`` singular directions.

    OPD and RL updates are reported to be low-rank; keeping only the dominant subspace drops the noise that a large
    multiplier would otherwise amplify. Tensors with fewer than two dimensions (biases, norms) keep their plain update;
    a tensor of more than two dimensions is treated as a matrix ``(shape[0], -1)``. Uses the randomized
    ``torch.svd_lowrank`` (cost ``O(rows * cols * (rank + oversample) * (niter + 1))`` per matrix, at events only)
    seeded from the step under ``torch.random.fork_rng``, so it is reproducible and never touches the training RNG.
    Under FSDP each rank projects its own shard, which is not the projection of the full matrix.

    Args:
        rank: singular directions kept per matrix (default 1).
        oversample: extra random directions for accuracy (default 4).
        niter: power iterations (default 2).
    """

    def __init__(self, rank: int = 1, oversample: int = 4, niter: int = 2) -> None:
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank: expected a positive int, got {rank!r}")
        self.rank, self.oversample, self.niter = rank, oversample, niter

    def __call__(self, deltas: Sequence[torch.Tensor], step: int) -> None:
        devices = sorted({d.device.index for d in deltas if d.device.type == "cuda"})
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(step)
            for delta in deltas:
                if delta.dim() < 2 or min(delta.shape[0], delta[0].numel()) <= self.rank:
                    continue
                matrix = delta.reshape(delta.shape[0], -1).float()
                q = min(self.rank + self.oversample, *matrix.shape)
                u, s, v = torch.svd_lowrank(matrix, q=q, niter=self.niter)
                k = self.rank
                delta.copy_(((u[:, :k] * s[:k]) @ v[:, :k].T).reshape(delta.shape))

    def __repr__(self) -> str:
        return f"LowRank(rank={self.rank})"
