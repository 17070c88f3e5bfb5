"""What moves: the parameters of param groups with ``extrapolate=True`` (the default); :func:`extrapolation_groups`
builds such groups from parameter names with the paper's attention/MLP rule."""

from __future__ import annotations

import re
from typing import Any

import torch

__all__ = ["PAPER_PATTERN", "extrapolation_groups"]

#: Parameter names that EffOPD's code extrapolates: attention and MLP weights. Embeddings, lm_head and norms stay.
PAPER_PATTERN = r"attn|attention|q_proj|k_proj|v_proj|o_proj|mlp|ffn|gate_proj|up_proj|down_proj"


def extrapolation_groups(
    model: torch.nn.Module, pattern: str = PAPER_PATTERN, **group_options: Any
) -> list[dict[str, Any]]:
    """Param groups for a base optimizer: parameters whose name matches ``pattern`` get ``extrapolate=True``.

    Frozen parameters (``requires_grad=False``) are left out. ``group_options`` (``lr``, ``weight_decay``, ...) go
    into both groups. Example::

        base = torch.optim.AdamW(extrapolation_groups(model), lr=1e-5)
        opt = ExtrapolatingOptimizer(base, probe=validation_loss)
    """
    regex = re.compile(pattern)
    chosen: list[torch.nn.Parameter] = []
    rest: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (chosen if regex.search(name) else rest).append(param)
    if not chosen:
        raise ValueError(f"pattern: no trainable parameter name of the model matches {pattern!r}")
    groups = [{"params": chosen, "extrapolate": True, **group_options}]
    if rest:
        groups.append({"params": rest, "extrapolate": False, **group_options})
    return groups
