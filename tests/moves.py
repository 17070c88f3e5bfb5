"""A checker for the integration tests: every ExtrapolatingOptimizer step, wherever a framework calls it, must leave
the weights where its event record says.

Installed as torch's global optimizer step hooks, so it sees optimizers that a Trainer, TRL or accelerate built
without the test touching them. For each wrapper step it takes the anchor ``A`` (before the step), the weights
``theta_1`` the base step left (the base optimizer's post-hook) and the weights after the event, and checks::

    event with accepted m:  theta == A + m * (theta_1 - A)   (and theta != theta_1 when m != 1)
    no event:               theta == theta_1
    the anchor after an event is theta itself.

On DTensors (FSDP2) it checks each rank's local shard.
"""

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from effopt import ANCHOR, ExtrapolatingOptimizer


def _local(t):
    return (t.to_local() if hasattr(t, "to_local") else t).detach()


def _selected(opt):
    return [p for g in opt.param_groups if g["extrapolate"] for p in g["params"] if p.requires_grad]


class MoveRecorder:
    """Use as a context manager; ``checked`` lists ``(step, accepted)`` for every event it verified."""

    def __init__(self, rtol=1e-5, atol=1e-6):
        self.rtol, self.atol = rtol, atol
        self.checked: list[tuple[int, float]] = []
        self.steps = 0
        self._opt = self._anchors = self._theta1 = None

    def __enter__(self):
        self._handles = [register_optimizer_step_pre_hook(self._pre), register_optimizer_step_post_hook(self._post)]
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()

    def _pre(self, opt, args, kwargs):
        if isinstance(opt, ExtrapolatingOptimizer):
            self._opt, self._events = opt, len(opt.events)
            self._params = _selected(opt)
            self._anchors = [
                _local(opt.state[p][ANCHOR]).clone() if ANCHOR in opt.state.get(p, {}) else _local(p).clone()
                for p in self._params
            ]  # the first step anchors the weights as is
            self._theta1 = None

    def _post(self, opt, args, kwargs):
        if self._opt is not None and opt is self._opt.optimizer:
            self._theta1 = [_local(p).clone() for p in self._params]
        elif opt is self._opt:
            self.steps += 1
            after = [_local(p) for p in self._params]
            assert self._theta1 is not None, "the base optimizer's step was not seen"
            if len(opt.events) == self._events:
                for t, t1 in zip(after, self._theta1):
                    assert torch.equal(t, t1), "the weights moved at a step without an event"
                return
            assert len(opt.events) == self._events + 1
            m = opt.events[-1]["accepted"]
            for p, t, t1, a in zip(self._params, after, self._theta1, self._anchors):
                torch.testing.assert_close(t, a + m * (t1 - a), rtol=self.rtol, atol=self.atol)
                assert torch.equal(_local(opt.state[p][ANCHOR]), t), "the anchor is not the accepted point"
            if m != 1.0:
                assert any(not torch.equal(t, t1) for t, t1 in zip(after, self._theta1)), "accepted m != 1, no move"
            self.checked.append((opt.events[-1]["step"], m))
