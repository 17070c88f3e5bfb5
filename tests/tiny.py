"""The model the optimizer tests train (a tiny one with a transformer block's names), its data and probe, and
the helpers they share: training, comparing state, a wrapped optimizer, a run beside a bare twin."""

import torch

from effopt import ANCHOR, Every, ExtrapolatingOptimizer


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


def make_wrapped(model, **kwargs):
    kwargs.setdefault("schedule", Every(4))
    return ExtrapolatingOptimizer(torch.optim.AdamW(model.parameters(), lr=0.01), probe=probe_for(model), **kwargs)


def twin_runs(probe, steps=3, **kwargs):
    model, twin = make_model(), make_model()
    opt = ExtrapolatingOptimizer(
        torch.optim.AdamW(model.parameters(), lr=0.01), probe=probe, schedule=lambda s: s == steps, **kwargs
    )
    bare = torch.optim.AdamW(twin.parameters(), lr=0.01)
    train(twin, bare, steps)
    return model, opt, twin, bare
