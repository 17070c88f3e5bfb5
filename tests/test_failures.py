"""Failures leave nothing lost: a probe that raises or returns a non-finite value or no real number, non-finite
weights, bad input named, a search's bad multiplier refused; each restores the base step's weights."""

import math
import warnings

import pytest
import torch
from tiny import assert_same_tensors, base_state, make_model, probe_for, train, twin_runs, weights

from effopt import (
    ANCHOR,
    Backoff,
    Every,
    ExtrapolatingOptimizer,
    ExtrapolationWarning,
    Fixed,
    Greedy,
    Guard,
    LowRank,
    ProbeError,
    Quadratic,
    StepScale,
    extrapolation_groups,
)
from effopt.optimizer import SCHEDULE

# --- Failures leave nothing lost --------------------------------------------------------------------------------------


def test_a_raising_probe_restores_the_weights_and_names_the_step():
    calls = []

    def probe():
        calls.append(1)
        if len(calls) == 3:
            raise KeyError("validation set missing")
        return float(-len(calls))  # improving: the search moves away from m = 1 before the failure

    model, opt, twin, bare = twin_runs(probe)
    train(model, opt, 2)
    with pytest.raises(ProbeError, match="after step 3") as info:
        train(model, opt, 1, start=2)
    assert isinstance(info.value.__cause__, KeyError) and info.value.step == 3
    assert_same_tensors(weights(model), weights(twin))
    assert_same_tensors(base_state(opt), bare.state_dict()["state"])
    assert all(torch.equal(opt.state[p][ANCHOR], p.detach()) for p in model.parameters())
    train(model, opt, 1, start=3)  # training goes on


def test_a_stateful_schedule_hears_of_an_event_whose_probe_raised():
    theta = torch.nn.Parameter(torch.zeros(2))
    schedule = Backoff(interval=4, max_interval=16)

    def probe():
        raise OSError("evaluation server down")

    opt = ExtrapolatingOptimizer(torch.optim.SGD([theta], lr=0.1), probe=probe, schedule=schedule)
    theta.grad = torch.ones(2)
    with pytest.raises(ProbeError):
        opt.step()  # step 1: an event, which fails
    assert opt.events[0]["accepted"] == 1.0 and "OSError" in opt.events[0]["reason"]
    assert schedule.next_step == 3  # told "nothing accepted": waits rather than retrying at every step
    assert opt.param_groups[0][SCHEDULE] == {"next_step": 3, "wait": 2}  # and the checkpoint knows it
    opt.step()  # step 2: no event
    assert len(opt.events) == 1


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_probe_value_ends_the_event_at_the_base_step(bad):
    values = iter([1.0, 0.5, bad])
    model, opt, twin, bare = twin_runs(lambda: next(values))
    with pytest.warns(ExtrapolationWarning, match="after step 3 ended at m = 1: non-finite probe value"):
        train(model, opt, 3)
    assert opt.events[0]["accepted"] == 1.0 and "non-finite probe" in opt.events[0]["reason"]
    assert_same_tensors(weights(model), weights(twin))
    assert_same_tensors(base_state(opt), bare.state_dict()["state"])


def test_non_finite_candidate_weights_end_the_event_at_the_base_step():
    theta = torch.nn.Parameter(torch.zeros(3, dtype=torch.float16))
    opt = ExtrapolatingOptimizer(torch.optim.SGD([theta], lr=0.5), search=Fixed(1e6), schedule=Every(1))
    theta.grad = -torch.ones(3, dtype=torch.float16)
    with pytest.warns(ExtrapolationWarning, match="after step 1 ended at m = 1: non-finite weights at multiplier"):
        opt.step()  # the base step leaves 0.5; m = 1e6 would be 5e5, past float16's 65504
    assert "non-finite weights" in opt.events[0]["reason"] and opt.events[0]["accepted"] == 1.0
    assert torch.equal(theta.detach(), torch.full((3,), 0.5, dtype=torch.float16))


def test_non_finite_events_warn_once_per_optimizer_and_move_nothing():
    model, twin = make_model(), make_model()
    opt = ExtrapolatingOptimizer(
        torch.optim.AdamW(model.parameters(), lr=0.01), probe=lambda: math.nan, schedule=Every(1)
    )
    bare = torch.optim.AdamW(twin.parameters(), lr=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(model, opt, 4)
        train(twin, bare, 4)
    assert [e["reason"] for e in opt.events] == ["non-finite probe value nan at multiplier 1.0"] * 4
    assert [str(w.message) for w in caught if w.category is ExtrapolationWarning] == [
        "effopt: the extrapolation event after step 1 ended at m = 1: non-finite probe value nan at multiplier 1.0; "
        "further such events are not warned about (see opt.events)"
    ]
    assert issubclass(ExtrapolationWarning, RuntimeWarning)
    assert_same_tensors(weights(model), weights(twin))
    assert_same_tensors(base_state(opt), bare.state_dict()["state"])
    other = ExtrapolatingOptimizer(
        torch.optim.SGD(twin.parameters(), lr=0.01), probe=lambda: math.nan, schedule=Every(1)
    )
    with pytest.warns(ExtrapolationWarning, match="after step 1"):  # once per optimizer, not once per process
        train(twin, other, 2)


# --- Bad input ------------------------------------------------------------------------------------------------------


def test_bad_input_is_named():
    model = make_model()
    adamw = lambda: torch.optim.AdamW(model.parameters())  # noqa: E731
    probe = probe_for(model)
    cases = [
        (TypeError, "optimizer", lambda: ExtrapolatingOptimizer(model, probe=probe)),
        (TypeError, "optimizer", lambda: ExtrapolatingOptimizer(ExtrapolatingOptimizer(adamw(), probe), probe)),
        (TypeError, "probe", lambda: ExtrapolatingOptimizer(adamw(), probe=0.5)),
        (
            TypeError,
            "model: expected a torch.nn.Module .* got ProbeLoss",
            lambda: ExtrapolatingOptimizer(adamw(), probe, model=probe),
        ),
        (
            TypeError,
            "model: .* got a list holding str",
            lambda: ExtrapolatingOptimizer(adamw(), probe, model=[model, "x"]),
        ),
        (TypeError, "model: .* got an empty tuple", lambda: ExtrapolatingOptimizer(adamw(), probe, model=())),
        (ValueError, "probe", lambda: ExtrapolatingOptimizer(adamw())),
        (ValueError, "mode", lambda: ExtrapolatingOptimizer(adamw(), probe, mode="up")),
        (ValueError, "preset", lambda: ExtrapolatingOptimizer(adamw(), probe, preset="fast")),
        (ValueError, "tolerance", lambda: ExtrapolatingOptimizer(adamw(), probe, tolerance=-1)),
        (TypeError, "schedule", lambda: ExtrapolatingOptimizer(adamw(), probe, schedule=4)),
        (
            ValueError,
            "no parameter is selected",
            lambda: ExtrapolatingOptimizer(
                torch.optim.AdamW([{"params": model.parameters(), "extrapolate": False}]), probe
            ),
        ),
        (ValueError, "multipliers", lambda: Greedy((3, -1))),
        (ValueError, "multipliers", lambda: Greedy(())),
        (ValueError, "multiplier", lambda: Fixed(0)),
        (ValueError, "k", lambda: Every(0)),
        (ValueError, "interval", lambda: Backoff(0)),
        (ValueError, "max_interval", lambda: Backoff(10, max_interval=5)),
        (ValueError, "pays_above", lambda: Backoff(10, pays_above=0)),
        (ValueError, "rank", lambda: LowRank(0)),
        (ValueError, "first", lambda: Quadratic(first=0.5)),
        (ValueError, "pattern", lambda: extrapolation_groups(model, pattern="nothing_matches_this")),
        (TypeError, "step_scale", lambda: ExtrapolatingOptimizer(adamw(), probe, step_scale=2.0)),
        (ValueError, "low, high", lambda: StepScale(low=2.0)),
        (ValueError, "start", lambda: StepScale(start=0)),
        (TypeError, "probe", lambda: Guard(3.0, budget=0.1)),
        (ValueError, "budget", lambda: Guard(probe, budget=-0.1)),
        (ValueError, "budget", lambda: Guard(probe, budget=float("inf"))),
        (ValueError, "mode", lambda: Guard(probe, budget=0.1, mode="up")),
        (ValueError, "shrink", lambda: Guard(probe, budget=0.1, shrink=-1)),
        (TypeError, "guard", lambda: ExtrapolatingOptimizer(adamw(), probe, guard=probe)),
        (
            ValueError,
            "probe: a guard needs the main probe",
            lambda: ExtrapolatingOptimizer(adamw(), search=Fixed(), guard=Guard(probe, budget=0.1)),
        ),
    ]
    for error, name, make in cases:
        with pytest.raises(error, match=name):
            make()


def test_a_search_returning_a_bad_multiplier_is_refused_and_restores():
    model, opt, twin, _ = twin_runs(lambda: 0.0, search=lambda line: -2.0)
    with pytest.raises(ValueError, match="search"):
        train(model, opt, 3)
    assert_same_tensors(weights(model), weights(twin))


# --- What a probe may return ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["0.3", None, 0.3 + 0j, torch.tensor([0.3, 0.4]), True, [0.3]], ids=repr)
@pytest.mark.parametrize("which", ["probe", "guard probe"])
def test_a_probe_value_that_is_not_one_real_number_is_refused_and_restores(bad, which):
    good = iter([1.0, 0.5, 0.25, 0.125])
    probe = (lambda: bad) if which == "probe" else (lambda: next(good))
    guard = Guard(lambda: bad, budget=1.0) if which == "guard probe" else None
    model, opt, twin, bare = twin_runs(probe, guard=guard)
    with pytest.raises(TypeError, match=rf"^{which}: returned .*; expected a real number"):
        train(model, opt, 3)
    assert_same_tensors(weights(model), weights(twin))  # back where the base step left them
    assert_same_tensors(base_state(opt), bare.state_dict()["state"])
    assert "TypeError" in opt.events[0]["reason"] and opt.events[0]["accepted"] == 1.0


def real_numbers():
    numbers = [0.5, 1, torch.tensor(0.5), torch.tensor([0.5]), torch.tensor(0.5, dtype=torch.float64)]
    try:
        import numpy
    except ImportError:
        return numbers
    return numbers + [numpy.float32(0.5), numpy.int64(1), numpy.array(0.5)]


@pytest.mark.parametrize("good", real_numbers(), ids=lambda v: f"{type(v).__name__}-{float(v)}")
def test_real_numbers_of_every_kind_are_probe_values(good):
    values = iter([good, 0.4])  # m = 1 reads `good`; the move to m = 2 reads 0.4 and is accepted
    theta = torch.nn.Parameter(torch.zeros(1))
    opt = ExtrapolatingOptimizer(
        torch.optim.SGD([theta], lr=0.1), probe=lambda: next(values), search=Greedy((2.0,)), schedule=Every(1)
    )
    theta.grad = -torch.ones(1)
    opt.step()
    assert opt.events[0]["values"] == [float(good), 0.4] and opt.events[0]["accepted"] == 2.0
