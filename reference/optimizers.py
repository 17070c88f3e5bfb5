"""The optimizers that the reference loops and the benchmarks compare, built by name.

Every loop calls `build_optimizer(name, model, lr, probes)`, so a loop runs the bare optimizer, effopt and the peers
with one code path. `probes` maps a probe name to `(callable, mode)`: the loops offer "loss" (a smooth validation loss,
mode "min") and "accuracy" (the paper's sampled validation accuracy, mode "max"); the post-training loops also offer
"drift" (the KL to the starting model on held-out data of the skill it must keep), which "effopt-guard" guards.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from effopt import Backoff, ExtrapolatingOptimizer, Fixed, Guard, LowRank, PowersOfTwo, ProbeBudget, StepScale

Probes = dict[str, tuple[Callable[[], float], str]]
#: effopt-guard's budget: no extrapolation may take the "drift" probe (KL to the start on the retained skill, nats per
#: token) more than this past its value at the first event. One value for every task, not tuned: a small KL.
GUARD_BUDGET = 0.05


def _adamw(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)


def _effopt(model, lr, probes, probe_name="loss", **kwargs):
    probe, mode = probes[probe_name]
    return ExtrapolatingOptimizer(_adamw(model, lr), probe=probe, mode=mode, **kwargs)


def _guard(probes) -> Guard:
    if "drift" not in probes:
        raise ValueError(f"optimizer: effopt-guard needs a 'drift' probe; this loop offers {sorted(probes)}")
    return Guard(probes["drift"][0], budget=GUARD_BUDGET)


def _lookahead(model, lr, probes):
    from pytorch_optimizer import Lookahead

    return Lookahead(_adamw(model, lr), k=5, alpha=0.5)


def _schedulefree(model, lr, probes):
    from schedulefree import AdamWScheduleFree

    opt = AdamWScheduleFree(model.parameters(), lr=lr, weight_decay=0.0, warmup_steps=0)
    opt.train()
    return opt


def _prodigy(model, lr, probes):
    """Prodigy (Mishchenko and Defazio, 2023): learning-rate-free, so `lr` is ignored; untuned, as a user starts."""
    from prodigyopt import Prodigy

    return Prodigy(model.parameters(), lr=1.0, weight_decay=0.0, d_coef=1.0)


def _effopt_prodigy(model, lr, probes):
    """effopt around untuned Prodigy: Prodigy sets the step size (no step scale), effopt's events move along its
    update, and each accepted move shifts Prodigy's p0 with the weights (effopt's default ``positions``)."""
    probe, mode = probes["loss"]
    return ExtrapolatingOptimizer(_prodigy(model, lr, probes), probe=probe, mode=mode, step_scale=StepScale(high=1.0))


def _expo(model, lr, probes):
    return ExtrapolatingOptimizer(_adamw(model, lr), search=Fixed(2.0), preset="effopd")


BUILDERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adamw": lambda model, lr, probes: _adamw(model, lr),
    "effopt": lambda model, lr, probes: _effopt(model, lr, probes, preset="default"),
    # The published rule with its sampled-accuracy probe, then the same rule with the smooth loss probe alone changed.
    "effopt-paper": lambda model, lr, probes: _effopt(model, lr, probes, "accuracy", preset="effopd"),
    "effopt-paper-loss": lambda model, lr, probes: _effopt(model, lr, probes, preset="effopd"),
    # Then the search changed too (a quadratic line search, still at powers of two, the lr fixed); then the Backoff
    # schedule ("effopt-noscale"); then the persistent step size, which makes effopt's default ("effopt").
    "effopt-quadratic": lambda model, lr, probes: _effopt(
        model, lr, probes, schedule=PowersOfTwo(), step_scale=StepScale(high=1.0)
    ),
    "effopt-noscale": lambda model, lr, probes: _effopt(model, lr, probes, step_scale=StepScale(high=1.0)),
    # The default with a guard: fast, but no move may spend more than GUARD_BUDGET of KL to the start on the retained
    # skill. Only for loops with a "drift" probe.
    "effopt-guard": lambda model, lr, probes: _effopt(model, lr, probes, guard=_guard(probes)),
    # The default that counts what its probe costs (effopt.ProbeBudget, measured): events only where they save more
    # base steps than their probe calls cost, and at most 15% of the time in probe calls.
    "effopt-budget": lambda model, lr, probes: _effopt(model, lr, probes, budget=ProbeBudget()),
    # Events twice as often while they move by more than 1.5x: more gain in post-training, more probe cost elsewhere.
    "effopt-backoff5": lambda model, lr, probes: _effopt(model, lr, probes, schedule=Backoff(5, pays_above=1.5)),
    # The default with the update denoised: each matrix's update projected on its top singular direction.
    "effopt-lowrank": lambda model, lr, probes: _effopt(model, lr, probes, direction=LowRank(1)),
    # A probe-free peer: ExPO's fixed extrapolation (theta + alpha (theta - anchor), alpha = 1) at the same events.
    "effopt-prodigy": _effopt_prodigy,
    "expo": _expo,
    "prodigy": _prodigy,
    "lookahead": _lookahead,
    "schedulefree": _schedulefree,
}
OPTIMIZERS = tuple(BUILDERS)
LR_FREE = ("prodigy", "effopt-prodigy")  #: optimizers that set their own step size and ignore `lr`


def build_optimizer(name: str, model: torch.nn.Module, lr: float, probes: Probes) -> torch.optim.Optimizer:
    """The optimizer called `name` (one of OPTIMIZERS) over `model`'s parameters at learning rate `lr`.

    `effopt-budget@COST` is effopt-budget with a declared probe cost, COST base steps a call (ProbeBudget(cost=COST)):
    its events are then the same on every machine, where a measured cost follows the clock."""
    base, _, cost = name.partition("@")
    if base not in BUILDERS or (cost and base != "effopt-budget"):
        raise ValueError(f"optimizer: expected one of {', '.join(OPTIMIZERS)} (or effopt-budget@COST), got {name!r}")
    if cost:
        try:
            declared = float(cost)
        except ValueError:
            raise ValueError(f"optimizer: effopt-budget@COST needs a number of base steps, got {name!r}") from None
        return _effopt(model, lr, probes, budget=ProbeBudget(cost=declared))
    return BUILDERS[base](model, lr, probes)
