"""effopt: reach the same quality in fewer steps by extrapolating the weights along the update they already make.

    from effopt import ExtrapolatingOptimizer
    opt = ExtrapolatingOptimizer(torch.optim.AdamW(model.parameters(), lr=1e-5), probe=validation_loss)
"""

from .optimizer import ANCHOR, PRESETS, ExtrapolatingOptimizer, ExtrapolationWarning, ProbeError
from .policies import (
    PAPER_PATTERN,
    Accumulated,
    Backoff,
    Every,
    Fixed,
    Greedy,
    Guard,
    LowRank,
    Never,
    PowersOfTwo,
    ProbeBudget,
    Quadratic,
    StepScale,
    extrapolation_groups,
)

__all__ = [
    "ANCHOR",
    "PAPER_PATTERN",
    "PRESETS",
    "Accumulated",
    "Backoff",
    "Every",
    "ExtrapolatingOptimizer",
    "ExtrapolationWarning",
    "Fixed",
    "Greedy",
    "Guard",
    "LowRank",
    "Never",
    "PowersOfTwo",
    "ProbeBudget",
    "ProbeError",
    "Quadratic",
    "StepScale",
    "extrapolation_groups",
]
__version__ = "0.1.0"
