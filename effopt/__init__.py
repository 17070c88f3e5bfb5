"""effopt: reach the same quality in fewer steps by extrapolating the weights along the update they already make.

from effopt import ExtrapolatingOptimizer
opt = ExtrapolatingOptimizer(torch.optim.AdamW(model.parameters(), lr=1e-5), probe=validation_loss)
"""

from .budget import ProbeBudget
from .directions import Accumulated, LowRank
from .errors import ExtrapolationWarning, ProbeError
from .groups import PAPER_PATTERN, extrapolation_groups
from .guard import Guard
from .optimizer import ANCHOR, PRESETS, ExtrapolatingOptimizer
from .schedules import Backoff, Every, Never, PowersOfTwo
from .searches import Fixed, Greedy, Quadratic
from .step_scale import StepScale

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
    "__version__",
    "extrapolation_groups",
]
__version__ = "0.2.0"
