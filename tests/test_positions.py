"""The base optimizer's own points in weight space (Prodigy's p0, schedule-free AdamW's z) move with the weights."""

import pytest
import torch

from effopt import ExtrapolatingOptimizer, Fixed, Greedy
from effopt._line import _positions


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


X, Y = torch.randn(32, 4, generator=torch.Generator().manual_seed(1)), torch.randn(32, 3)


def _loss(model):
    return torch.nn.functional.mse_loss(model(X), Y)


def _step(opt, model):
    opt.zero_grad()
    _loss(model).backward()
    opt.step()


def _offsets(opt, model, key):
    return [(opt.state[p][key].reshape(p.shape) - p.detach()).clone() for p in model.parameters()]


@pytest.mark.parametrize("positions", [("p0", "z"), ()])
def test_an_accepted_move_shifts_prodigys_start_by_the_same_displacement(positions):
    prodigy = pytest.importorskip("prodigyopt")
    model = _model()
    opt = ExtrapolatingOptimizer(
        prodigy.Prodigy(model.parameters(), lr=1.0), search=Fixed(3.0), preset="effopd", positions=positions
    )
    _step(opt, model)  # step 1: an event (powers of two) that moves to m = 3
    assert opt.events[-1]["accepted"] == 3.0
    start = [p.detach().clone() for p in model.parameters()]  # theta(3), the new anchor
    offsets = _offsets(opt, model, "p0")
    bare = _model()  # the same first step without the move: p0 - theta_1 is the initial weights minus theta_1
    base = prodigy.Prodigy(bare.parameters(), lr=1.0)
    _step(base, bare)
    expected = [(base.state[p]["p0"].reshape(p.shape) - p.detach()) for p in bare.parameters()]
    moved = [s - b.detach() for s, b in zip(start, bare.parameters())]
    for got, want, move in zip(offsets, expected, moved):
        assert move.abs().max() > 0
        if positions:  # the distance Prodigy reads from its start is the one it would have read without the move
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        else:  # left alone, p0 stays at the initial weights and the move adds to the distance
            torch.testing.assert_close(got, want - move, rtol=0, atol=1e-6)


def test_a_rejected_event_leaves_the_positions_bit_for_bit():
    prodigy = pytest.importorskip("prodigyopt")
    model = _model()
    calls = []

    def probe():  # each call worse than the last: every event stops at its first candidate and ends at m = 1
        calls.append(1)
        return float(len(calls))

    opt = ExtrapolatingOptimizer(prodigy.Prodigy(model.parameters(), lr=1.0), probe=probe, preset="effopd")
    _step(opt, model)
    before = [opt.state[p]["p0"].clone() for p in model.parameters()]
    _step(opt, model)  # step 2: an event, rejected
    assert opt.events[-1]["accepted"] == 1.0 and len(calls) >= 2
    for p, b in zip(model.parameters(), before):
        assert torch.equal(opt.state[p]["p0"], b)


def test_schedule_free_z_moves_with_the_weights_so_its_average_moves_too():
    schedulefree = pytest.importorskip("schedulefree")
    model = _model()
    base = schedulefree.AdamWScheduleFree(model.parameters(), lr=0.01, warmup_steps=0)
    base.train()
    opt = ExtrapolatingOptimizer(base, search=Fixed(2.0), preset="effopd")
    opt.zero_grad()
    _loss(model).backward()
    base.step()  # a plain base step (no event), so z and y differ before the wrapped step
    _step(opt, model)  # the wrapper's step 1: base step, then a move to m = 2
    assert opt.events[-1]["accepted"] == 2.0
    offsets = _offsets(opt, model, "z")
    # Without the move, y - z after this step; with it, the same: the move shifted both by the same displacement.
    bare = _model()
    bare_base = schedulefree.AdamWScheduleFree(bare.parameters(), lr=0.01, warmup_steps=0)
    bare_base.train()
    for _ in range(2):
        bare_base.zero_grad()
        _loss(bare).backward()
        bare_base.step()
    for got, p in zip(offsets, bare.parameters()):
        torch.testing.assert_close(got, bare_base.state[p]["z"] - p.detach(), rtol=0, atol=1e-6)


def test_positions_of_another_size_are_left_alone_and_bad_positions_are_named():
    model = _model()
    opt = ExtrapolatingOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), search=Greedy((3,)), probe=lambda: 0.0)
    _step(opt, model)
    for p in model.parameters():
        opt.state[p]["p0"] = torch.zeros(2)  # a strided sample (Prodigy's slice_p > 1): not a point of p's shape
    p = next(model.parameters())
    assert _positions(opt.state[p], p, opt.positions) == []
    with pytest.raises(TypeError, match="positions"):
        ExtrapolatingOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), probe=lambda: 0.0, positions="p0")
