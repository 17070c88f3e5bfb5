"""The wrapper switched off and the published rule: bit-for-bit identity, hand-worked trajectories, the
searches (greedy, quadratic, fixed), tolerance, the backoff schedule, direction stability, the foreach and in-place
moves."""

import pytest
import torch
from tiny import assert_same_tensors, base_state, make_model, probe_for, train, weights

from effopt import ANCHOR, Backoff, Every, ExtrapolatingOptimizer, Fixed, Greedy, LowRank, Never

# --- Identity and the published rule ------------------------------------------------------------------------------


@pytest.mark.parametrize("base_cls", [torch.optim.AdamW, torch.optim.SGD, torch.optim.Adafactor])
def test_switched_off_equals_the_bare_optimizer_bit_for_bit(base_cls):
    kwargs = {"lr": 0.01, "momentum": 0.9} if base_cls is torch.optim.SGD else {"lr": 0.01}
    bare_model, wrapped_model = make_model(), make_model()
    bare = base_cls(bare_model.parameters(), **kwargs)
    wrapped = ExtrapolatingOptimizer(base_cls(wrapped_model.parameters(), **kwargs), schedule=Never(), search=Fixed())
    train(bare_model, bare, 20)
    train(wrapped_model, wrapped, 20)
    assert_same_tensors(weights(bare_model), weights(wrapped_model))
    assert_same_tensors(bare.state_dict()["state"], base_state(wrapped))
    assert wrapped.events == []


def test_hand_worked_trajectory_of_the_published_rule():
    # f(theta) = |theta - theta*|^2 and SGD with lr 0.03: every step scales r = theta - theta* by 0.94. An event whose
    # anchor is k steps back has delta = -(1 - 0.94^k) r_A, so theta(m) - theta* = (1 - m (1 - 0.94^k)) r_A and the
    # probe -f(theta(m)) is -(1 - m (1 - 0.94^k))^2 |r_A|^2. By hand, with candidates 3, 5, 7, 9, 11:
    #   step 1 (k=1, 1-0.94=0.06):   |1-3(.06)|=.82 .70 .58 .46 .34 all improve          -> m = 11, r = .34 r0
    #   step 2 (k=1):                 the same factors                                    -> m = 11, r = .34^2 r0
    #   step 4 (k=2, 1-.94^2=.1164): .6508 .418 .1852 |-.0476| then |-.2804| is worse    -> m = 9
    #   step 8 (k=4, 1-.94^4=.21925): .34225 |-.09626| then |-.53476| is worse           -> m = 5
    torch.set_default_dtype(torch.float64)
    try:
        target = torch.tensor([1.0, -2.0, 3.0, 0.5])
        theta = torch.nn.Parameter(torch.zeros(4))
        probe = lambda: -((theta - target) ** 2).sum().item()  # noqa: E731  (accuracy-like: higher is better)
        opt = ExtrapolatingOptimizer(torch.optim.SGD([theta], lr=0.03), probe=probe, mode="max", preset="effopd")
        for _ in range(8):
            opt.zero_grad()
            ((theta - target) ** 2).sum().backward()
            opt.step()
        assert [e["step"] for e in opt.events] == [1, 2, 4, 8]
        assert [e["accepted"] for e in opt.events] == [11, 11, 9, 5]
        full = [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]
        assert [e["multipliers"] for e in opt.events] == [full, full, full, [1.0, 3.0, 5.0, 7.0]]
        r = 0.34 * 0.34 * (1 - 9 * (1 - 0.94**2)) * (1 - 5 * (1 - 0.94**4))
        torch.testing.assert_close(theta.detach() - target, r * (0 - target))
        assert torch.equal(opt.state[theta][ANCHOR], theta.detach())  # the anchor moved to the accepted point
    finally:
        torch.set_default_dtype(torch.float32)


def test_greedy_stops_at_the_first_non_improvement_and_restores_exactly():
    # A probe that only likes m = 3: the search tries 3 (better), 5 (worse), stops, and goes back to m = 3.
    theta = torch.nn.Parameter(torch.zeros(3))
    anchor = theta.detach().clone()
    seen = []

    def probe():
        seen.append(theta.detach().clone())
        m = float(theta[0] / 0.1) if theta[0] != 0 else 0.0
        return -abs(m - 3.0)

    opt = ExtrapolatingOptimizer(torch.optim.SGD([theta], lr=0.1), probe=probe, mode="max", preset="effopd")
    opt.zero_grad()
    theta.grad = -torch.ones(3)  # one step moves theta to 0.1
    opt.step()
    event = opt.events[0]
    assert event["multipliers"] == [1.0, 3.0, 5.0] and event["accepted"] == 3.0
    torch.testing.assert_close(theta.detach(), anchor + 0.3)
    assert torch.equal(opt.state[theta][ANCHOR], theta.detach())


def test_a_rejected_event_leaves_the_base_step_weights_bit_for_bit():
    model, twin = make_model(), make_model()
    opt = ExtrapolatingOptimizer(
        torch.optim.AdamW(model.parameters(), lr=0.01), probe=lambda: 0.0, schedule=lambda s: s == 3
    )
    bare = torch.optim.AdamW(twin.parameters(), lr=0.01)
    train(model, opt, 3)
    train(twin, bare, 3)
    assert opt.events[0]["accepted"] == 1.0 and len(opt.events[0]["multipliers"]) > 1
    assert_same_tensors(weights(model), weights(twin))


def test_quadratic_search_finds_the_vertex_of_a_quadratic_line():
    # The probe along the line is (m - 4.2)^2: three points determine it, the fourth probe is the exact minimum.
    theta = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    probe = lambda: (theta[0].item() / 0.1 - 4.2) ** 2  # noqa: E731
    opt = ExtrapolatingOptimizer(torch.optim.SGD([theta], lr=0.1), probe=probe, schedule=lambda s: s == 1)
    theta.grad = -torch.ones(2, dtype=torch.float64)
    opt.step()
    event = opt.events[0]
    assert len(event["multipliers"]) == 4
    assert event["accepted"] == pytest.approx(4.2)
    assert theta[0].item() == pytest.approx(0.42)


def test_tolerance_rejects_improvements_smaller_than_it():
    theta = torch.nn.Parameter(torch.zeros(2))
    probe = lambda: -theta.sum().item() * 1e-3  # noqa: E731  (gains of 2e-4 per multiplier step)
    opt = ExtrapolatingOptimizer(torch.optim.SGD([theta], lr=0.1), probe=probe, preset="effopd", tolerance=1e-3)
    theta.grad = -torch.ones(2)
    opt.step()
    assert opt.events[0]["accepted"] == 1.0


def test_backoff_is_frequent_while_moves_pay_and_backs_off_when_they_do_not():
    schedule = Backoff(interval=4, max_interval=16)
    steps = []
    for step in range(1, 80):
        if schedule(step):
            steps.append(step)
            schedule.observe(step, 3.0 if step < 20 else 1.0)  # moves pay until step 20, then never
    assert steps == [1, 3, 7, 11, 15, 19, 23, 31, 47, 63, 79]
    # with pays_above, small moves count as not paying
    schedule, steps = Backoff(interval=4, max_interval=16, pays_above=1.5), []
    for step in range(1, 40):
        if schedule(step):
            steps.append(step)
            schedule.observe(step, 1.2)
    assert steps == [1, 3, 7, 15, 31]


def test_fixed_multiplier_needs_no_probe():
    theta = torch.nn.Parameter(torch.zeros(2))
    opt = ExtrapolatingOptimizer(torch.optim.SGD([theta], lr=0.1), search=Fixed(2.5), schedule=Every(1))
    theta.grad = -torch.ones(2)
    opt.step()
    torch.testing.assert_close(theta.detach(), torch.full((2,), 0.25))
    assert opt.events[0]["multipliers"] == [] and opt.events[0]["accepted"] == 2.5


def test_stability_is_the_cosine_of_successive_accumulated_updates():
    # SGD with lr 1 and given gradients: the update over a window is minus the sum of its gradients, known exactly.
    big, small = torch.nn.Parameter(torch.zeros(640, 300)), torch.nn.Parameter(torch.zeros(7))
    opt = ExtrapolatingOptimizer(torch.optim.SGD([big, small], lr=1.0), search=Fixed(1.0), schedule=Every(2))
    g = torch.Generator().manual_seed(0)
    shared = [torch.randn(640, 300, generator=g), torch.randn(7, generator=g)]
    windows = []
    for window in range(4):  # each window: the shared direction (flipped in window 2) plus fresh noise
        sign = -1.0 if window == 2 else 1.0
        grads = [[sign * s + 0.8 * torch.randn(s.shape, generator=g) for s in shared] for _ in range(2)]
        for step_grads in grads:
            big.grad, small.grad = step_grads
            opt.step()
        windows.append(torch.cat([-(a + b).flatten() for a, b in zip(*grads)]))
    exact = [None] + [float(torch.nn.functional.cosine_similarity(u, v, dim=0)) for u, v in zip(windows, windows[1:])]
    got = [e["stability"] for e in opt.events]
    assert got[0] is None and exact[1] > 0.5 and exact[2] < -0.5  # the flip shows
    for estimate, truth in zip(got[1:], exact[1:]):
        assert abs(estimate - truth) < 0.05  # about 1,000 sampled coordinates per tensor, out of 192,000
    assert opt._sketch.numel() < 2 * 1024 + 7  # what is remembered between events is a small sample


def test_stability_is_one_for_a_constant_direction_and_the_sample_spans_every_column():
    theta = torch.nn.Parameter(torch.zeros(64, 64))
    opt = ExtrapolatingOptimizer(torch.optim.SGD([theta], lr=0.1), search=Fixed(1.0), schedule=Every(3))
    column = torch.zeros(64, 64)
    column[:, 5] = 1.0  # every update lives in one column, which a row-aligned stride of 64 would miss or always hit
    for _ in range(9):
        theta.grad = column.clone()
        opt.step()
    assert [e["stability"] for e in opt.events][1:] == [pytest.approx(1.0)] * 2


def reference_event(params, anchors, multiplier):
    """The published formula, computed plainly: theta = A + m * (theta_1 - A)."""
    return [a + multiplier * (p - a) for p, a in zip(params, anchors)]


@pytest.mark.parametrize("direction", [None, LowRank(rank=1)])
def test_foreach_path_equals_the_per_tensor_path(direction):
    runs = []
    for foreach in (True, False):
        model = make_model()
        opt = ExtrapolatingOptimizer(
            torch.optim.AdamW(model.parameters(), lr=0.01),
            probe=probe_for(model),
            direction=direction,
            foreach=foreach,
            schedule=Every(3),
        )
        train(model, opt, 12)
        runs.append((weights(model), opt.events))
    assert_same_tensors(runs[0][0], runs[1][0])
    assert [e["accepted"] for e in runs[0][1]] == [e["accepted"] for e in runs[1][1]]


def test_in_place_moves_equal_the_published_formula():
    model = make_model()
    opt = ExtrapolatingOptimizer(torch.optim.AdamW(model.parameters(), lr=0.01), search=Fixed(3.0), schedule=Never())
    train(model, opt, 5)
    params = [p.detach().clone() for p in model.parameters()]
    anchors = [opt.state[p][ANCHOR].clone() for p in model.parameters()]
    opt.schedule = lambda s: True
    opt.search = Greedy((2.0, 7.0, 3.0))  # visits 2, 7 and 3 (moves up and down the line), if each improves
    opt.probe, opt.mode = iter([0.0, -1.0, -2.0, -3.0]).__next__, "min"
    with torch.no_grad():
        opt._event(opt.step_count)  # an event at the current weights, as after a step
    assert opt.events[-1]["multipliers"] == [1.0, 2.0, 7.0, 3.0]
    for got, want in zip(model.parameters(), reference_event(params, anchors, 3.0)):
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=1e-6)
