"""The wrapper's contract, its math on hand-worked trajectories, resume, failures and bad input."""

import copy
import io
import math
import pickle
import re
import warnings

import pytest
import torch

from effopt import (
    ANCHOR,
    PAPER_PATTERN,
    Backoff,
    Every,
    ExtrapolatingOptimizer,
    ExtrapolationWarning,
    Fixed,
    Greedy,
    Guard,
    LowRank,
    Never,
    ProbeBudget,
    ProbeError,
    Quadratic,
    StepScale,
    extrapolation_groups,
)
from effopt.optimizer import SCHEDULE, STEP


class Tiny(torch.nn.Module):
    """Names as in a transformer block, so the paper's selection rule has something to select."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 8)
        self.attn = torch.nn.Linear(8, 8)
        self.mlp = torch.nn.Linear(8, 8)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, tokens):
        h = self.embed(tokens)
        h = h + torch.tanh(self.attn(h))
        h = h + torch.tanh(self.mlp(h))
        return self.head(h)


def make_model(seed=0):
    torch.manual_seed(seed)
    return Tiny()


DATA = torch.Generator().manual_seed(1)
TOKENS = torch.randint(0, 10, (32, 6), generator=DATA)
TARGETS = torch.randint(0, 10, (32, 6), generator=DATA)
PROBE_TOKENS = torch.randint(0, 10, (16, 6), generator=DATA)


def loss_of(model, tokens=TOKENS, targets=TARGETS):
    return torch.nn.functional.cross_entropy(model(tokens).flatten(0, 1), targets.flatten())


class ProbeLoss:
    """A validation loss on fixed data; a class rather than a lambda so that the wrapper can be pickled."""

    def __init__(self, model):
        self.model = model

    def __call__(self):
        return loss_of(self.model, PROBE_TOKENS, PROBE_TOKENS).item()


probe_for = ProbeLoss


def train(model, opt, steps, start=0):
    for i in range(start, start + steps):
        opt.zero_grad()
        loss_of(model, TOKENS[i % 4 :: 4], TARGETS[i % 4 :: 4]).backward()
        opt.step()


def base_state(opt):
    """The base optimizer's state without the anchors, as plain tensors by parameter index."""
    sd = opt.state_dict()["state"]
    return {i: {k: v for k, v in s.items() if k != ANCHOR} for i, s in sd.items()}


def assert_same_tensors(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            assert_same_tensors(a[k], b[k])
        elif isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


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


# --- Resume, checkpoints, copies ------------------------------------------------------------------------------------


def make_wrapped(model, **kwargs):
    kwargs.setdefault("schedule", Every(4))
    return ExtrapolatingOptimizer(torch.optim.AdamW(model.parameters(), lr=0.01), probe=probe_for(model), **kwargs)


@pytest.mark.parametrize("schedule", [Every(4), Backoff(interval=3, max_interval=8)], ids=repr)
@pytest.mark.parametrize("scaled", [False, True], ids=["", "step_scale"])
def test_resume_is_bit_identical_to_the_uninterrupted_run(schedule, scaled):
    def build(model):
        return make_wrapped(model, schedule=copy.deepcopy(schedule), step_scale=StepScale(start=1) if scaled else None)

    model = make_model()
    opt = build(model)
    train(model, opt, 6)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    resumed_model = make_model(seed=123)
    resumed_model.load_state_dict(saved["model"])
    resumed = build(resumed_model)
    resumed.load_state_dict(saved["opt"])
    assert resumed.step_count == 6
    if scaled:
        assert resumed.step_scale.factor == opt.step_scale.factor

    events_before = len(opt.events)
    train(model, opt, 10, start=6)
    train(resumed_model, resumed, 10, start=6)
    assert_same_tensors(weights(model), weights(resumed_model))
    assert_same_tensors(opt.state_dict(), resumed.state_dict())
    assert len(resumed.events) >= 2
    # The same events, except that the resumed run has no previous update to compare its first one with.
    assert resumed.events[0]["stability"] is None and opt.events[events_before]["stability"] is not None
    assert opt.events[events_before:] == [
        dict(e, seconds=f["seconds"], stability=f["stability"] if i == 0 else e["stability"])
        for i, (e, f) in enumerate(zip(resumed.events, opt.events[events_before:]))
    ]


def test_state_dict_before_the_first_step_is_standard_and_loadable():
    model = make_model()
    opt = make_wrapped(model)
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"} and sd["state"] == {}
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    buffer.seek(0)
    fresh = make_wrapped(make_model())
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    train(model, fresh, 1)  # still usable


def test_checkpoint_is_plain_and_holds_the_anchor_and_counter():
    model = make_model()
    opt = make_wrapped(model)
    train(model, opt, 5)
    sd = opt.state_dict()
    assert type(sd["state"]) is dict and all(type(s) is dict for s in sd["state"].values())
    assert all(ANCHOR in s for s in sd["state"].values())
    assert all(g[STEP] == 5 and g["extrapolate"] is True for g in sd["param_groups"])


def test_loads_a_bare_base_optimizer_checkpoint_and_keeps_the_selection():
    model = make_model()
    bare = torch.optim.AdamW(extrapolation_groups(model, lr=0.01))
    train(model, bare, 3)
    opt = ExtrapolatingOptimizer(
        torch.optim.AdamW(extrapolation_groups(model, lr=0.01)), probe=probe_for(model), schedule=Every(2)
    )
    opt.load_state_dict(bare.state_dict())
    assert [g["extrapolate"] for g in opt.param_groups] == [True, False]
    assert opt.step_count == 0
    before = weights(model)
    train(model, opt, 2, start=3)
    assert len(opt.events) == 1
    assert not torch.equal(before["attn.weight"], model.attn.weight)


def test_deepcopy_and_pickle_round_trip_and_continue_identically():
    model = make_model()
    opt = make_wrapped(model, search=Fixed(2.0))
    train(model, opt, 5)
    copied_model, copied_opt = copy.deepcopy((model, opt))
    pickled_model, pickled_opt = pickle.loads(pickle.dumps((model, opt)))
    for clone_model, clone_opt in ((copied_model, copied_opt), (pickled_model, pickled_opt)):
        assert isinstance(clone_opt, ExtrapolatingOptimizer)
        assert clone_opt.param_groups[0]["params"][0] is next(clone_model.parameters())
        assert clone_opt.state[clone_opt.param_groups[0]["params"][0]][ANCHOR] is not None
    train(model, opt, 4, start=5)
    for clone_model, clone_opt in ((copied_model, copied_opt), (pickled_model, pickled_opt)):
        train(clone_model, clone_opt, 4, start=5)
        assert_same_tensors(weights(clone_model), weights(model))
        assert [e["accepted"] for e in clone_opt.events] == [e["accepted"] for e in opt.events]


def test_anchor_offloaded_to_cpu_gives_the_same_result():
    results = []
    for device in (None, "cpu"):
        model = make_model()
        opt = make_wrapped(model, anchor_device=device)
        train(model, opt, 9)
        results.append(weights(model))
        assert all(opt.state[p][ANCHOR].device.type == "cpu" for p in model.parameters())
    assert_same_tensors(*results)


def test_memory_at_rest_is_one_copy_of_the_selected_parameters():
    model = make_model()
    opt = ExtrapolatingOptimizer(torch.optim.SGD(extrapolation_groups(model), lr=0.1), probe=probe_for(model))
    train(model, opt, 5)
    selected = [*model.attn.parameters(), *model.mlp.parameters()]
    extra = [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    assert sum(t.numel() for t in extra) == sum(p.numel() for p in selected)
    assert opt._pending == {}


# --- Fitting into torch -----------------------------------------------------------------------------------------------


def test_is_an_optimizer_with_live_groups_state_and_defaults():
    model = make_model()
    base = torch.optim.AdamW(model.parameters(), lr=0.01)
    opt = ExtrapolatingOptimizer(base, probe=probe_for(model))
    assert isinstance(opt, torch.optim.Optimizer)
    assert opt.param_groups is base.param_groups and opt.state is base.state and opt.defaults is base.defaults
    base.load_state_dict(base.state_dict())  # replaces the base's list: the wrapper must follow
    assert opt.param_groups is base.param_groups


def test_lr_scheduler_drives_the_base_learning_rate():
    model = make_model()
    opt = make_wrapped(model)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for i in range(4):
        train(model, opt, 1, start=i)
        scheduler.step()
    assert opt.optimizer.param_groups[0]["lr"] == pytest.approx(0.0025)
    opt.load_state_dict(opt.state_dict())
    assert scheduler.optimizer.param_groups[0] is opt.optimizer.param_groups[0]  # the groups the base now holds
    scheduler.step()
    scheduler.step()  # epoch 6: the step size of 2 halves the lr again, in the groups the base steps with
    assert opt.optimizer.param_groups[0]["lr"] == pytest.approx(0.00125)  # still attached after a load


def test_grad_scaler_skips_inf_steps_without_counting_them():
    model = make_model()
    opt = make_wrapped(model)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4)
    for bad in (False, True, False):
        opt.zero_grad()
        scaler.scale(loss_of(model)).backward()
        if bad:
            model.attn.weight.grad[0, 0] = math.inf
        before = weights(model)
        scaler.step(opt)
        scaler.update()
        if bad:
            assert_same_tensors(before, weights(model))
    assert opt.step_count == 2


def test_closure_runs_once_with_gradients_and_its_loss_is_returned():
    model = make_model()
    opt = make_wrapped(model)
    calls = []

    def closure():
        calls.append(torch.is_grad_enabled())
        opt.zero_grad()
        loss = loss_of(model)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert calls == [True] and torch.isfinite(loss)


def test_frozen_parameters_stay_and_get_no_anchor():
    model = make_model()
    model.embed.weight.requires_grad_(False)
    frozen = model.embed.weight.detach().clone()
    opt = make_wrapped(model, schedule=Every(1), search=Fixed(3.0))
    train(model, opt, 4)
    assert torch.equal(model.embed.weight, frozen)
    assert ANCHOR not in opt.state.get(model.embed.weight, {})


def test_added_param_group_is_anchored_and_extrapolated():
    model = make_model()
    opt = ExtrapolatingOptimizer(torch.optim.SGD(model.attn.parameters(), lr=0.1), search=Fixed(2.0), schedule=Every(2))
    train(model, opt, 1)
    opt.add_param_group({"params": list(model.mlp.parameters())})
    assert opt.param_groups[-1][STEP] == 1 and opt.param_groups[-1]["extrapolate"] is True
    start = model.mlp.weight.detach().clone()
    train(model, opt, 1, start=1)
    after_step = opt.state[model.mlp.weight][ANCHOR]  # the event moved the anchor to the accepted point
    assert torch.equal(after_step, model.mlp.weight.detach())
    assert not torch.equal(start, model.mlp.weight.detach())


def test_a_fake_step_with_zero_lr_and_zero_grads_moves_nothing_and_is_not_counted():
    model = make_model()
    opt = make_wrapped(model, schedule=Every(1), search=Fixed(3.0))
    before = weights(model)
    for group in opt.param_groups:
        group["lr"] = 0.0
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    assert_same_tensors(before, weights(model))
    assert opt.step_count == 0 and opt.events == []


def test_step_hooks_run():
    model = make_model()
    opt = make_wrapped(model)
    seen = []
    opt.register_step_pre_hook(lambda o, a, k: seen.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: seen.append("post"))
    train(model, opt, 1)
    assert seen == ["pre", "post"]


def test_schedule_free_style_train_eval_are_delegated():
    schedulefree = pytest.importorskip("schedulefree")
    model = make_model()
    base = schedulefree.AdamWScheduleFree(model.parameters(), lr=0.01)
    opt = ExtrapolatingOptimizer(base, probe=probe_for(model))
    opt.train()
    assert base.param_groups[0]["train_mode"] is True
    opt.eval()
    assert base.param_groups[0]["train_mode"] is False


def test_extrapolation_groups_follow_the_paper_rule():
    model = make_model()
    chosen, rest = extrapolation_groups(model, lr=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert chosen["extrapolate"] is True and rest["extrapolate"] is False and chosen["lr"] == 0.1
    assert len(chosen["params"]) == 4 and len(rest["params"]) == 3
    moved = {names[id(p)] for p in chosen["params"]}
    assert moved == {n for n in names.values() if re.search(PAPER_PATTERN, n)}  # attention and MLP weights
    assert not moved & {names[id(p)] for p in rest["params"]}


def test_low_rank_direction_recovers_a_rank_one_update_and_leaves_the_rng_alone():
    u, v = torch.randn(12, 1), torch.randn(1, 7)
    rank_one = u @ v
    noisy = rank_one + 1e-4 * torch.randn(12, 7)
    deltas = [noisy.clone(), torch.randn(5)]
    bias = deltas[1].clone()
    state = torch.get_rng_state()
    LowRank(rank=1)(deltas, step=3)
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(deltas[0], rank_one, atol=1e-3, rtol=0)
    assert torch.equal(deltas[1], bias)  # vectors keep their plain update


# --- Failures leave nothing lost --------------------------------------------------------------------------------------


def twin_runs(probe, steps=3, **kwargs):
    model, twin = make_model(), make_model()
    opt = ExtrapolatingOptimizer(
        torch.optim.AdamW(model.parameters(), lr=0.01), probe=probe, schedule=lambda s: s == steps, **kwargs
    )
    bare = torch.optim.AdamW(twin.parameters(), lr=0.01)
    train(twin, bare, steps)
    return model, opt, twin, bare


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


# --- The model the probe evaluates ----------------------------------------------------------------------------------


def dropout_model():
    """Dropout in two places; the last one kept in eval mode on purpose, as a user may freeze a part of a model."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.Dropout(0.5), torch.nn.Tanh(), torch.nn.Linear(16, 1), torch.nn.Dropout(0.5)
    )
    model[4].eval()
    return model


X4, Y1 = torch.randn(16, 4, generator=DATA), torch.randn(16, 1, generator=DATA)


def modes(model):
    return [m.training for m in model.modules()]


def train_mse(model, opt, steps):
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(X4), Y1).backward()
        opt.step()


def test_with_model_a_probe_that_leaves_eval_mode_on_does_not_leak_it_into_training():
    for given in (None, "module", "list"):
        model = make_model()

        def probe():
            model.eval()  # a probe written for evaluation, that does not switch back
            return loss_of(model, PROBE_TOKENS, PROBE_TOKENS).item()

        model_option = {"module": model, "list": [model]}.get(given)
        opt = ExtrapolatingOptimizer(
            torch.optim.SGD(model.parameters(), lr=0.1), probe=probe, schedule=Every(1), model=model_option
        )
        train(model, opt, 2)
        assert len(opt.events) == 2 and model.training == (given is not None)


def test_the_probe_sees_eval_mode_and_each_submodule_gets_its_own_mode_back():
    model = dropout_model()
    before = modes(model)
    assert before == [True, True, True, True, True, False]
    seen = []

    def probe():
        seen.append(modes(model))
        first, second = (torch.nn.functional.mse_loss(model(X4), Y1).item() for _ in range(2))
        assert first == second  # dropout is off: the probe is deterministic
        return first

    opt = ExtrapolatingOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.1),
        probe=probe,
        schedule=Every(1),
        search=Greedy((2.0, 3.0)),
        model=model,
    )
    train_mse(model, opt, 3)
    assert len(seen) >= 6 and all(flags == [False] * 6 for flags in seen)
    assert modes(model) == before  # the frozen dropout stays in eval mode, the rest is back in train mode


def test_the_modes_come_back_when_the_probe_raises():
    model = dropout_model()
    before = modes(model)

    def probe():
        model.train()  # switches the frozen dropout on too, then fails
        raise KeyError("validation set missing")

    opt = ExtrapolatingOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.1), probe=probe, schedule=Every(1), model=(model,)
    )
    with pytest.raises(ProbeError):
        train_mse(model, opt, 1)
    assert modes(model) == before


class Resharding(torch.nn.Linear):
    """Stands in for an FSDP2 (``fully_shard``) module: it has a ``reshard`` method, which counts its calls."""

    reshards = 0

    def reshard(self):
        self.reshards += 1


def test_fsdp2_modules_are_resharded_after_every_probe_call():
    torch.manual_seed(0)
    model = torch.nn.Sequential(Resharding(4, 8), torch.nn.Tanh(), Resharding(8, 1))
    calls = []

    def probe():
        calls.append(model[0].reshards)
        return torch.nn.functional.mse_loss(model(X4), Y1).item()

    opt = ExtrapolatingOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.1),
        probe=probe,
        schedule=Every(1),
        search=Greedy((2.0, 3.0)),
        model=model,
    )
    train_mse(model, opt, 2)
    assert len(calls) >= 4 and calls == list(range(len(calls)))  # each call comes after the previous one's reshard
    assert model[0].reshards == model[2].reshards == len(calls)
    plain = ExtrapolatingOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), probe=probe, schedule=Every(1))
    before = model[0].reshards
    train_mse(model, plain, 1)
    assert len(calls) > before and model[0].reshards == before  # without model=, nothing is resharded


def test_model_travels_with_copies_and_stays_out_of_the_checkpoint():
    model = make_model()
    opt = ExtrapolatingOptimizer(
        torch.optim.AdamW(model.parameters(), lr=0.01), probe=probe_for(model), schedule=Every(4), model=model
    )
    train(model, opt, 5)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)  # would refuse a module
    fresh_model = make_model()
    fresh = ExtrapolatingOptimizer(
        torch.optim.AdamW(fresh_model.parameters(), lr=0.01), probe=probe_for(fresh_model), model=fresh_model
    )
    fresh.load_state_dict(loaded)
    assert fresh.model == (fresh_model,)
    copied_model, copied_opt = copy.deepcopy((model, opt))
    pickled_model, pickled_opt = pickle.loads(pickle.dumps((model, opt)))
    assert copied_opt.model == (copied_model,) and pickled_opt.model == (pickled_model,)
    train(model, opt, 4, start=5)
    for clone_model, clone_opt in ((copied_model, copied_opt), (pickled_model, pickled_opt)):
        train(clone_model, clone_opt, 4, start=5)
        assert_same_tensors(weights(clone_model), weights(model))


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
    opt = make_wrapped(model, schedule=Every(2), step_scale=StepScale(start=1, high=100.0))
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


# --- repr and the event history ---------------------------------------------------------------------------------------


def test_repr_shows_every_piece():
    model = make_model()
    opt = ExtrapolatingOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.1),
        probe=probe_for(model),
        model=model,
        guard=Guard(lambda: 0.0, budget=0.5),
        tolerance=0.01,
        history=5,
    )
    text = repr(opt)
    for piece in (
        "SGD (",
        "probe=ProbeLoss",
        "model=['Tiny']",
        "mode='min'",
        "schedule=Backoff(",
        "search=Quadratic(",
        "direction=Accumulated()",
        "step_scale=StepScale(",
        "guard=Guard(budget=0.5",
        "budget=None",
        "tolerance=0.01",
        "anchor_device=None",
        "foreach=True",
        "history=5",
    ):
        assert piece in text, piece


def test_events_keep_the_last_history_and_count_every_one_through_a_checkpoint():
    model = make_model()
    opt = make_wrapped(model, schedule=Every(1), history=3)
    full = make_wrapped(make_model(), schedule=Every(1), history=None)
    train(model, opt, 7)
    train(full.probe.model, full, 7)
    assert [e["step"] for e in opt.events] == [5, 6, 7] and len(full.events) == 7
    assert [dict(e, seconds=0) for e in opt.events] == [dict(f, seconds=0) for f in full.events[-3:]]
    moves = sum(e["accepted"] != 1.0 for e in full.events)
    assert opt.events_run == full.events_run == 7 and opt.moves_accepted == full.moves_accepted == moves > 0
    assert opt.state_dict()["param_groups"][0]["effopt_counts"] == {"events": 7, "moves": moves}

    resumed = make_wrapped(make_model(), schedule=Every(1), history=3)
    resumed.load_state_dict(opt.state_dict())
    assert resumed.events == [] and (resumed.events_run, resumed.moves_accepted) == (7, moves)
    train(resumed.probe.model, resumed, 1, start=7)
    assert resumed.events_run == 8 and [e["step"] for e in resumed.events] == [8]
    for clone in (pickle.loads(pickle.dumps(opt)), copy.deepcopy(opt)):
        assert clone.events == opt.events and type(clone.events) is list and clone.history == 3
        assert (clone.events_run, clone.moves_accepted) == (7, moves)

    nothing_kept = make_wrapped(make_model(), schedule=Every(1), history=0)
    train(nothing_kept.probe.model, nothing_kept, 3)
    assert nothing_kept.events == [] and nothing_kept.events_run == 3


def test_the_default_history_is_bounded():
    model = make_model()
    assert make_wrapped(model).history == 1000
    with pytest.raises(ValueError, match="history: expected an int >= 0 or None"):
        make_wrapped(model, history=-1)


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
    step_scale = StepScale(start=1, high=100.0)
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
