"""An event's ``stability``: the cosine between the update accumulated since the anchor and the previous event's,
estimated on a fixed sample of about ``SKETCH_NUMEL`` coordinates per tensor (the update's *sketch*).

Internal: :class:`effopt.ExtrapolatingOptimizer` keeps the previous event's sketch and compares each new one with it.
"""

from __future__ import annotations

import math

import torch

from ._line import _local, _sum_over_ranks

SKETCH_NUMEL = 1024  #: about this many fixed coordinates per tensor estimate the direction stability of the update


def _sketch(params: list[torch.Tensor], anchors: list[torch.Tensor]) -> torch.Tensor:
    """The update ``params - anchors`` on the sampled coordinates (each rank's own shard), in float32."""
    parts = []
    for p, a in zip(params, anchors):
        p, a = _local(p), _local(a)
        stride = _sketch_stride(p.numel(), p.shape[-1] if p.dim() else 1)
        p, a = p.reshape(-1)[::stride], a.reshape(-1)[::stride]
        parts.append(p.to(a.device, torch.float32) - a.float())
    device = parts[0].device
    return torch.cat([part.to(device) for part in parts])


def _cosine(sketch: torch.Tensor, previous: torch.Tensor | None) -> float | None:
    """The cosine between this update's sketch and the previous event's (summed over ranks: exact for shards,
    unchanged for replicas); None without a previous sketch of the same shape."""
    if previous is None or previous.shape != sketch.shape:
        return None
    previous = previous.to(sketch.device)
    dot, a2, b2 = _sum_over_ranks(torch.stack([sketch @ previous, sketch @ sketch, previous @ previous]).tolist())
    return dot / math.sqrt(a2 * b2) if a2 > 0 and b2 > 0 else None


def _sketch_stride(numel: int, width: int) -> int:
    """Every ``stride``-th element, about ``SKETCH_NUMEL`` of them; ``stride`` coprime with the row width, so the
    sample visits every column rather than one."""
    stride = max(1, numel // SKETCH_NUMEL)
    while stride > 1 and math.gcd(stride, width) != 1:
        stride += 1
    return stride
