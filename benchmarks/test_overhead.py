"""What the wrapper costs: a step without an event, one candidate move, and memory at rest.

Timings are medians of many repetitions, bare and wrapped interleaved in the same run on the same machine, reported as
ratios. Gradients are fixed, so only the optimizer step is timed.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from benchmarks.tasks import MODE
from effopt import ANCHOR, ExtrapolatingOptimizer, Fixed, Never
from effopt._line import LineSettings, _Line

SIZES = {  # name: (width, layers): stacks of square Linear layers
    "0.3M params": (128, 16),
    "8.4M params": (1024, 8),
}
if MODE == "smoke":
    SIZES = {"0.3M params": (128, 16)}


def make_model(width: int, layers: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    return model


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@pytest.mark.parametrize("size", list(SIZES))
def test_overhead(benchmark, size):
    width, layers = SIZES[size]
    bare_model, wrapped_model = make_model(width, layers), make_model(width, layers)
    bare = torch.optim.AdamW(bare_model.parameters(), lr=1e-5)
    wrapped = ExtrapolatingOptimizer(
        torch.optim.AdamW(wrapped_model.parameters(), lr=1e-5), search=Fixed(3.0), schedule=Never()
    )
    repeats = 10 if MODE == "smoke" else 300 if width <= 256 else 60

    def measure() -> dict:
        for _ in range(5):  # warm-up: state creation, anchors, allocator
            bare.step()
            wrapped.step()
        bare_times, wrapped_times = [], []
        for i in range(repeats):  # alternate which goes first, so neither always finds the other's data in cache
            if i % 2:
                bare_times.append(timed(bare.step))
                wrapped_times.append(timed(wrapped.step))
            else:
                wrapped_times.append(timed(wrapped.step))
                bare_times.append(timed(bare.step))
        params = list(wrapped_model.parameters())
        anchors = [wrapped.state[p][ANCHOR] for p in params]
        first, later = [], []
        with torch.no_grad():
            for _ in range(max(5, repeats // 10)):
                line = _Line(
                    LineSettings.of(wrapped), params, anchors, wrapped.step_count, {"multipliers": [], "values": []}
                )
                first.append(timed(lambda: line._move(3.0)))  # swap roles, then theta_1 + 2 delta
                later.append(timed(lambda: line._move(5.0)))  # a foreach lerp along the line
                line.finish(1.0)  # back to theta_1, bit for bit; the anchor becomes theta_1
        bare_step = statistics.median(bare_times)
        param_bytes = sum(p.numel() * p.element_size() for p in params)
        bare_state = sum(
            t.numel() * t.element_size() for s in bare.state.values() for t in s.values() if isinstance(t, torch.Tensor)
        )
        wrapped_state = sum(
            t.numel() * t.element_size()
            for s in wrapped.state.values()
            for t in s.values()
            if isinstance(t, torch.Tensor)
        )
        return {
            "params": sum(p.numel() for p in params),
            "bare_step_seconds": bare_step,
            "wrapped_step_seconds": statistics.median(wrapped_times),
            "step_ratio": statistics.median(wrapped_times) / bare_step,
            "step_overhead_us": (statistics.median(wrapped_times) - bare_step) * 1e6,
            "first_move_seconds": statistics.median(first),
            "later_move_seconds": statistics.median(later),
            "first_move_ratio": statistics.median(first) / bare_step,
            "later_move_ratio": statistics.median(later) / bare_step,
            "selected_param_bytes": param_bytes,
            "extra_state_bytes": wrapped_state - bare_state,
        }

    figures = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.group = "overhead"
    benchmark.extra_info.update(kind="overhead", size=size, threads=torch.get_num_threads(), **figures)
    assert figures["extra_state_bytes"] == figures["selected_param_bytes"]  # memory is exact, not a timing
