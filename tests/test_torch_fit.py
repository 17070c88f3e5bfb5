"""Fitting into torch (an Optimizer's groups, state and defaults, lr schedulers, GradScaler, closures, frozen and
added parameters, hooks, train/eval), and the model the probe evaluates (eval mode, FSDP2 resharding, copies)."""

import copy
import io
import math
import pickle
import re

import pytest
import torch
from tiny import DATA, PROBE_TOKENS, assert_same_tensors, loss_of, make_model, make_wrapped, probe_for, train, weights

from effopt import (
    ANCHOR,
    PAPER_PATTERN,
    Every,
    ExtrapolatingOptimizer,
    Fixed,
    Greedy,
    LowRank,
    ProbeError,
    extrapolation_groups,
)
from effopt.optimizer import STEP

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
