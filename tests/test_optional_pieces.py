"""The optional pieces (effopt.policies): a step size that persists (StepScale), a guard on what must not get worse
(Guard) and the probe's budget (ProbeBudget)."""

import copy
import math

import pytest
import torch
from tiny import (
    TARGETS,
    TOKENS,
    assert_same_tensors,
    base_state,
    loss_of,
    make_model,
    make_wrapped,
    train,
    twin_runs,
    weights,
)

from effopt import (
    ANCHOR,
    Backoff,
    Every,
    ExtrapolatingOptimizer,
    Fixed,
    Greedy,
    Guard,
    Never,
    ProbeBudget,
    ProbeError,
    StepScale,
)

# --- A step size that persists ----------------------------------------------------------------------------------------


def test_step_scale_takes_the_root_of_each_multiplier_within_bounds_from_its_start():
    scale = StepScale(power=0.5, low=1.0, high=4.0, start=10)
    scale.observe(1, 16.0)  # before `start`: a short window says nothing about the step length
    assert scale.factor == 1.0
    scale.observe(10, 4.0)
    assert scale.factor == pytest.approx(2.0)
    scale.observe(20, 0.25)  # an overshoot shrinks it, but never below the user's lr
    assert scale.factor == 1.0
    for step in (30, 40, 50):
        scale.observe(step, 16.0)
    assert scale.factor == 4.0  # capped
    again = StepScale()
    again.load_state_dict(scale.state_dict())
    assert again.factor == 4.0


def test_the_default_step_scale_takes_each_multiplier_whole_from_step_2_without_a_ceiling():
    scale = StepScale()
    scale.observe(1, 16.0)  # one base step: its length is the lr's, whatever the gradient
    assert scale.factor == 1.0
    scale.observe(3, 16.0)
    scale.observe(7, 2.5)
    assert scale.factor == 40.0  # an lr 40 times the user's, as the evidence says: no cap
    scale.observe(15, 0.5)  # an overshoot halves it
    assert scale.factor == 20.0
    for step in (25, 35, 45, 55, 65):
        scale.observe(step, 0.5)
    assert scale.factor == 1.0  # never below the user's lr
    assert repr(scale) == "StepScale(power=1.0, low=1.0, high=None, start=2)"


def test_step_scale_multiplies_the_selected_lr_inside_the_step_only():
    """SGD without momentum: a step moves a weight by exactly lr * factor * grad, while the scheduler's lr stays."""
    torch.manual_seed(0)
    moved, fixed = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    base = torch.optim.SGD(
        [{"params": moved.parameters()}, {"params": fixed.parameters(), "extrapolate": False}], lr=0.1
    )
    scale = StepScale()
    scale.factor = 2.5
    opt = ExtrapolatingOptimizer(base, probe=lambda: 0.0, schedule=Never(), step_scale=scale)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    x = torch.randn(8, 3)
    for lr in (0.1, 0.05):
        before = [p.detach().clone() for p in (*moved.parameters(), *fixed.parameters())]
        opt.zero_grad()
        (moved(x).sum() + fixed(x).sum()).backward()
        grads = [p.grad.clone() for p in (*moved.parameters(), *fixed.parameters())]
        opt.step()
        after = list((*moved.parameters(), *fixed.parameters()))
        for i, (b, g, a) in enumerate(zip(before, grads, after)):
            factor = 2.5 if i < 2 else 1.0  # the unselected group keeps its lr
            assert torch.allclose(a, b - lr * factor * g, atol=1e-7)
        assert [group["lr"] for group in opt.param_groups] == [lr, lr]  # what the scheduler set, not scaled
        scheduler.step()


def test_step_scale_hears_every_event_and_lands_in_the_checkpoint():
    model = make_model()
    opt = make_wrapped(model, schedule=Every(2), step_scale=StepScale(power=0.5, start=1, high=100.0))
    train(model, opt, 6)
    expected = 1.0
    for event in opt.events:
        expected = max(expected * event["accepted"] ** 0.5, 1.0)
    assert opt.step_scale.factor == pytest.approx(expected) and len(opt.events) == 3
    assert opt.state_dict()["param_groups"][0]["effopt_step_scale"] == {"factor": opt.step_scale.factor}


# --- A guard ----------------------------------------------------------------------------------------------------------


def guarded_line(budget, mode="min", shrink=2):
    """One SGD step from theta = 0 to theta_1 = 0.1 (so theta(m) = 0.1 m); the main probe's minimum is at m = 4.2 and
    the guard reads theta itself (or -theta in mode "max"): a drift that grows with m."""
    theta = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    probe = lambda: (theta.item() / 0.1 - 4.2) ** 2  # noqa: E731
    sign = 1.0 if mode == "min" else -1.0
    guard = Guard(lambda: sign * theta.item(), budget=budget, mode=mode, shrink=shrink)
    opt = ExtrapolatingOptimizer(torch.optim.SGD([theta], lr=0.1), probe=probe, schedule=lambda s: s == 1, guard=guard)
    theta.grad = -torch.ones(1, dtype=torch.float64)
    opt.step()
    return theta, opt


@pytest.mark.parametrize("mode", ["min", "max"])
def test_a_guard_halves_a_move_that_would_spend_more_than_its_budget(mode):
    theta, opt = guarded_line(budget=0.2, mode=mode)  # reference 0.1 (m = 1): the guard allows theta <= 0.3
    event = opt.events[0]
    assert opt.guard.reference == pytest.approx(0.1 if mode == "min" else -0.1)
    assert [m for m, _ in event["guard"]] == [1.0, pytest.approx(4.2), pytest.approx(2.6)]  # 0.42 > 0.3, 0.26 fits
    assert event["accepted"] == pytest.approx(2.6) and theta.item() == pytest.approx(0.26)
    assert event["multipliers"][-1] == pytest.approx(2.6)  # the shortened move was checked on the main probe too


def test_a_guard_without_budget_refuses_every_move_and_restores_the_base_step_exactly():
    theta, opt = guarded_line(budget=0.0)
    assert [m for m, _ in opt.events[0]["guard"]] == [1.0, pytest.approx(4.2), pytest.approx(2.6), pytest.approx(1.8)]
    assert opt.events[0]["accepted"] == 1.0 and theta.item() == 0.1  # bit for bit where SGD left it
    assert opt.state[theta][ANCHOR].item() == 0.1


def test_a_shortened_move_must_still_beat_the_base_step_on_the_main_probe():
    # Main probe: only m = 4.2 and beyond improve on m = 1 (a narrow valley); halving to 2.6 is worse than m = 1.
    theta_box = []
    main = lambda: 0.0 if theta_box[0].item() > 0.4 else 1.0 + theta_box[0].item()  # noqa: E731
    theta = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    theta_box.append(theta)
    opt = ExtrapolatingOptimizer(
        torch.optim.SGD([theta], lr=0.1),
        probe=main,
        schedule=lambda s: s == 1,
        search=lambda line: 4.2 if line.improves(line.value(4.2), line.value(1.0)) else 1.0,
        guard=Guard(lambda: theta.item(), budget=0.2),
    )
    theta.grad = -torch.ones(1, dtype=torch.float64)
    opt.step()
    assert opt.events[0]["accepted"] == 1.0 and theta.item() == 0.1
    assert len(opt.events[0]["guard"]) == 2  # the reference and m = 4.2; no guard call at a point the probe refused


def test_the_guard_reference_is_read_once_and_lands_in_the_checkpoint():
    model = make_model()
    drift = []

    def guard_probe():
        drift.append(1)
        return loss_of(model, TOKENS, TARGETS).item()

    opt = make_wrapped(model, schedule=Every(2), guard=Guard(guard_probe, budget=10.0))
    train(model, opt, 6)
    reference = opt.guard.reference
    assert opt.events[0]["guard"][0] == [1.0, reference]
    assert all(e["guard"][0][0] != 1.0 for e in opt.events[1:] if e["guard"])  # no further reference reads
    assert opt.state_dict()["param_groups"][0]["effopt_guard"] == {"reference": reference}
    resumed = make_wrapped(make_model(), schedule=Every(2), guard=Guard(guard_probe, budget=10.0))
    resumed.load_state_dict(opt.state_dict())
    assert resumed.guard.reference == reference


def test_a_raising_guard_restores_the_base_step_and_names_the_step():
    calls = []

    def guard_probe():
        calls.append(1)
        if len(calls) == 2:
            raise KeyError("retained set missing")
        return 0.0

    main = []
    improving = lambda: main.append(1) or -float(len(main))  # noqa: E731  (every candidate beats the last)
    model, opt, twin, bare = twin_runs(improving, guard=Guard(guard_probe, budget=1.0))
    with pytest.raises(ProbeError, match="after step 3") as info:
        train(model, opt, 3)
    assert isinstance(info.value.__cause__, KeyError)
    assert_same_tensors(weights(model), weights(twin))
    assert_same_tensors(base_state(opt), bare.state_dict()["state"])


def test_without_a_guard_events_record_no_guard_values():
    model = make_model()
    opt = make_wrapped(model)
    train(model, opt, 8)
    assert opt.events and all(e["guard"] == [] for e in opt.events)


def test_a_guard_after_a_probe_free_search_compares_with_the_true_base_step():
    # Fixed(4) never probes m = 1: the guard must read it before moving, or "m = 1" would be read at m = 4.
    theta = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = ExtrapolatingOptimizer(
        torch.optim.SGD([theta], lr=0.1),
        probe=lambda: (theta.item() / 0.1 - 4.2) ** 2,
        schedule=lambda s: s == 1,
        search=Fixed(4.0),
        guard=Guard(lambda: theta.item(), budget=0.2),
    )
    theta.grad = -torch.ones(1, dtype=torch.float64)
    opt.step()  # guard allows theta <= 0.3: m = 4 (0.4) is refused, m = 2.5 (0.25) fits and beats m = 1
    event = opt.events[0]
    assert event["multipliers"][0] == 1.0 and event["values"][0] == pytest.approx(3.2**2)
    assert event["accepted"] == pytest.approx(2.5) and theta.item() == pytest.approx(0.25)


# --- The probe's budget -----------------------------------------------------------------------------------------------


class Heard:
    """A schedule with an event every step, which records what each event told it."""

    def __init__(self):
        self.heard = []

    def __call__(self, step):
        return True

    def observe(self, step, accepted):
        self.heard.append((step, accepted))


def test_a_declared_budget_runs_an_event_only_while_the_net_probe_cost_is_within_its_share():
    model = make_model()
    budget = ProbeBudget(cost=2.0, share=0.25)
    opt = make_wrapped(model, schedule=Every(1), budget=budget)
    train(model, opt, 60)
    assert 2 <= len(opt.events) < 30  # the schedule asked after every step; the budget let some through
    calls, saved, last, ran = 0, 0.0, 0, {e["step"]: e for e in opt.events}
    for step in range(1, 61):
        allowed = 2.0 * calls - saved <= 0.25 * (step + 2.0 * calls)
        assert (step in ran) == allowed, step
        if step in ran:
            calls += len(ran[step]["values"])
            saved += max(ran[step]["accepted"] - 1.0, 0.0) * (step - last)
            last = step
    assert budget.calls == calls and budget.saved == pytest.approx(saved) and budget.last_event == last


def test_without_a_share_every_scheduled_event_runs():
    model = make_model()
    opt = make_wrapped(model, schedule=Every(2), budget=ProbeBudget(cost=50.0, share=None))
    train(model, opt, 10)
    assert [e["step"] for e in opt.events] == [2, 4, 6, 8, 10]


def test_the_schedule_hears_no_move_where_the_saving_did_not_cover_the_cost():
    model = make_model()
    heard = Heard()
    opt = make_wrapped(model, schedule=heard, search=Fixed(3.0), budget=ProbeBudget(cost=1.0, share=None))
    opt.probe = None  # a probe-free search calls nothing: an event costs 0 calls and a move of m = 3 always pays
    train(model, opt, 3)
    assert heard.heard == [(1, 3.0), (2, 3.0), (3, 3.0)]

    model = make_model()
    heard = Heard()
    step_scale = StepScale(power=0.5, start=1, high=100.0)
    # Greedy at (3,) probes twice: at a window of 1 step, an accepted 3 saves (3 - 1) * 1 = 2 steps; two calls at
    # cost 1.5 cost 3, so the schedule hears 1; the step scale still hears the real multiplier.
    opt = make_wrapped(
        model, schedule=heard, search=Greedy((3,)), step_scale=step_scale, budget=ProbeBudget(cost=1.5, share=None)
    )
    train(model, opt, 4)
    accepted = [e["accepted"] for e in opt.events]
    assert 3.0 in accepted
    assert heard.heard == [(e["step"], 1.0) for e in opt.events]
    assert step_scale.factor == pytest.approx(min(100.0, math.prod(m**0.5 for m in accepted)))


def test_a_longer_window_makes_the_same_move_pay():
    budget = ProbeBudget(cost=1.5, share=None)
    event = {"values": [0.0, 0.0], "guard": [], "accepted": 3.0, "seconds": 0.0}
    assert budget.observe(1, event) == 1.0  # a window of 1: saves 2, costs 3
    assert budget.observe(3, event) == 3.0  # a window of 2: saves 4
    assert budget.calls == 4 and budget.last_event == 3 and budget.saved == 6.0  # 2 + 4, whether they paid or not


def test_a_measured_cost_is_the_median_probe_call_over_the_median_step():
    budget = ProbeBudget()
    assert budget.call_cost() is None and budget.allows(1)  # nothing timed yet: nothing waits
    for now in (0.0, 1.0, 2.0, 3.0):  # base steps of one second
        budget.begin_step(now)
    event = {"values": [0.0] * 4, "guard": [[1.0, 0.0]], "accepted": 2.0, "seconds": 10.0}
    assert budget.observe(3, event) == 1.0  # 5 calls of 2 s: a call costs 2 steps, the event 10; it saved 1 * 3
    assert budget.call_cost() == pytest.approx(2.0)
    budget.begin_step(14.0)  # the step from 3 s to 14 s held the event's 10 s: one base step of 1 s
    assert list(budget._step_seconds)[-1] == pytest.approx(1.0)


def test_a_budget_resumes_with_its_counts_and_the_same_events():
    def build(model):
        return make_wrapped(
            model, schedule=Backoff(interval=2, max_interval=8), budget=ProbeBudget(cost=1.0, share=0.3)
        )

    model = make_model()
    opt = build(model)
    train(model, opt, 8)
    saved = copy.deepcopy(opt.state_dict())
    resumed_model = copy.deepcopy(model)
    resumed = build(resumed_model)
    resumed.load_state_dict(saved)
    assert resumed.budget.state_dict() == opt.budget.state_dict()
    before = len(opt.events)
    train(model, opt, 16, start=8)
    train(resumed_model, resumed, 16, start=8)
    assert [e["step"] for e in resumed.events] == [e["step"] for e in opt.events[before:]]
    assert_same_tensors(weights(model), weights(resumed_model))


def test_a_measured_cost_is_in_the_checkpoint():
    model = make_model()
    opt = make_wrapped(model, schedule=Backoff(interval=2), budget=ProbeBudget(share=0.3))
    train(model, opt, 8)
    assert opt.budget.call_cost() is not None
    resumed = make_wrapped(copy.deepcopy(model), schedule=Backoff(interval=2), budget=ProbeBudget(share=0.3))
    resumed.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert resumed.budget.call_cost() == opt.budget.call_cost()
    assert list(resumed.budget._step_seconds) == list(opt.budget._step_seconds)
    assert resumed.budget.state_dict() == opt.budget.state_dict()
    old = {k: opt.budget.state_dict()[k] for k in ("calls", "last_event", "saved")}  # a checkpoint made before 0.2.0
    resumed.budget.load_state_dict(old)
    assert resumed.budget.call_cost() is None and resumed.budget.calls == opt.budget.calls


def test_the_share_can_be_passed_by_one_events_calls_at_most():
    """What ProbeBudget's docstring states: rule 2 is checked before each event, net of the savings."""
    model = make_model()
    budget = ProbeBudget(cost=3.0, share=0.2)
    opt = make_wrapped(model, schedule=Every(1), budget=budget)
    for step in range(1, 41):
        train(model, opt, 1, start=step - 1)
        spent = 3.0 * budget.calls
        most = max((len(e["values"]) for e in opt.events), default=0) * 3.0
        assert spent - budget.saved <= 0.2 * (step + spent) + most, step


def test_a_declared_budget_gives_the_same_events_on_every_run():
    runs = []
    for _ in range(2):
        model = make_model()
        opt = make_wrapped(model, schedule=Backoff(interval=2), budget=ProbeBudget(cost=1.0, share=0.5))
        train(model, opt, 40)
        runs.append([(e["step"], e["accepted"]) for e in opt.events])
    assert runs[0] == runs[1] and len(runs[0]) >= 2


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(cost=0), "cost: expected a positive finite number"),
        (dict(cost=float("inf")), "cost: expected a positive finite number"),
        (dict(share=1.0), r"share: expected a number in \(0, 1\) or None"),
        (dict(share=0), r"share: expected a number in \(0, 1\) or None"),
        (dict(share="0.1"), r"share: expected a number in \(0, 1\) or None"),
    ],
)
def test_bad_budget_input_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ProbeBudget(**kwargs)


def test_a_budget_that_is_not_one_is_refused():
    model = make_model()
    with pytest.raises(TypeError, match="budget: expected an effopt.ProbeBudget, got float"):
        make_wrapped(model, budget=0.2)
