"""A pytest plugin (`-p stand_in_smol`, tests/ on the path) that stands in for the real model's loop: benchmarks.loops'
smol_run and smol_task are replaced, before benchmarks.real imports them, by curves made up from the optimizer, the lr
and the seed, so that `make real`'s harness (benchmarks/test_speedup.py in the real mode) runs end to end in seconds.
Nothing is loaded or trained: reference.smol's prepare and train refuse to run while it is on."""

from __future__ import annotations

import math

import benchmarks.loops
import reference.smol


def _refuse(*args, **kwargs):
    raise AssertionError("the stand-in for the real model's loop is on: nothing may load or train the model")


def _curve(method: str, seed: int, lr: float, steps: int = 40) -> list[dict]:
    """A made-up curve: agreement rising from 0.6 at a rate that grows with the lr (Prodigy's its own), the reverse
    KL falling alike, the retained skill flat (lower above 1e-4: the grid's 10x is too far), 6 s a step."""
    rate = {"prodigy": 0.08}.get(method, 0.02 * min(lr / 2e-5, 4.0) * (2.0 if method == "effopt" else 1.0))
    rate *= 1 + 0.01 * seed
    points = []
    for step in range(0, steps + 1, 5):
        gained = 1 - math.exp(-rate * step)
        points.append(
            dict(
                step=step,
                train_seconds=6.0 * step,
                metric=0.6 + 0.2 * gained,
                objective=1.1 - 0.8 * gained,
                retained=0.33 - 0.05 * (lr > 1e-4),
            )
        )
    return points


def _smol_run(size: str):
    def run(method: str, instance: int, seed: int, lr: float, steps: int | None = None) -> dict:
        curve = _curve(method, seed, lr)
        return dict(
            curve=curve,
            initial_metric=curve[0]["metric"],
            final_metric=curve[-1]["metric"],
            events=[],
            device="cpu",
            metric_examples=1900,
        )

    return run


benchmarks.loops.smol_run = _smol_run
benchmarks.loops.smol_task = lambda size, instance: None
reference.smol.prepare = reference.smol.train = _refuse
