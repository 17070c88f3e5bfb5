"""The line of one event: the selected weights moved in place along ``theta(m) = theta_1 + (m - 1) * delta``, the
probe and guard read at each point, and the helpers that make that safe (eval mode, FSDP2 resharding, ranks).

Internal: :class:`effopt.ExtrapolatingOptimizer` builds one :class:`_Line` per event, from the pieces it needs (the
probes, the direction, the mode), and hands it to the search. This module never imports the optimizer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from typing import TypeAlias

    from ._events import Event

    Tensors: TypeAlias = list[torch.Tensor] | tuple[torch.Tensor, ...]  # what the foreach kernels take

CHUNK_NUMEL = 1 << 25  #: the first move of an event holds a transient delta of at most this many elements


class _Abort(Exception):
    """Ends an event early at m = 1 (a non-finite probe value or non-finite weights)."""


def _roots(model: torch.nn.Module | Sequence[torch.nn.Module]) -> Sequence[torch.nn.Module]:
    return (model,) if isinstance(model, torch.nn.Module) else model


def _submodules(model: torch.nn.Module | Sequence[torch.nn.Module]) -> dict[torch.nn.Module, None]:
    """Every distinct module in ``model`` (one module or several), in order, each once."""
    return dict.fromkeys(m for root in _roots(model) for m in root.modules())


def _reshard(model: torch.nn.Module | Sequence[torch.nn.Module]) -> None:
    """Reshards every FSDP2 module in ``model``: one with a ``reshard`` method, as ``FSDPModule`` has. FSDP2 keeps
    the root's parameters gathered after a forward without gradients and reuses them in the next forward, so without
    this a probe after a move would see the weights of the previous one."""
    for module in _submodules(model):
        if callable(getattr(type(module), "reshard", None)):  # the class's: a submodule named "reshard" does not count
            cast(Any, module).reshard()


@contextlib.contextmanager
def _evaluating(model: torch.nn.Module | Sequence[torch.nn.Module]) -> Iterator[None]:
    """``model`` in eval mode; afterwards each submodule's own ``training`` flag back (a model can be partly in eval
    mode, e.g. frozen dropout) and FSDP2 modules resharded, whatever the body did or raised."""
    modes = {module: module.training for module in _submodules(model)}
    try:
        for root in _roots(model):
            root.eval()
        yield
    finally:
        for module, training in modes.items():
            module.training = training
        _reshard(model)


def _real(value: Any, name: str) -> float:
    """``value`` as a float if it is one real number (a Python or NumPy int or float, or a one-element real tensor);
    otherwise a TypeError naming ``name``. A string such as "0.3" is not a number here, though ``float`` would take
    it."""
    if isinstance(value, torch.Tensor):
        ok = value.numel() == 1 and not value.is_complex()
    elif isinstance(value, numbers.Real):  # Python int and float, NumPy scalars
        ok = not isinstance(value, bool)
    elif type(value).__module__ == "numpy" and hasattr(value, "dtype"):  # a NumPy array of one real element
        ok = value.size == 1 and value.dtype.kind in "fiu"
    else:
        ok = False
    if not ok:
        shown = (
            f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
            if isinstance(value, torch.Tensor)
            else f"{type(value).__name__} {value!r}"[:200]
        )
        raise TypeError(
            f"{name}: returned {shown}; expected a real number (a Python or NumPy int or float, or a 0-dim real tensor)"
        )
    return float(value)


class GuardLike(Protocol):
    """What a line reads of a guard (an :class:`effopt.Guard`, which imports this module): its probe, and its
    values as scores."""

    probe: Callable[[], float]

    def score(self, value: float) -> float: ...


def _positions(state: dict[str, Any], param: torch.Tensor, keys: Sequence[str]) -> list[torch.Tensor]:
    """The entries of ``param``'s optimizer ``state`` named in ``keys`` that are points in weight space: tensors of
    ``param``'s size and dtype, which an accepted move shifts with ``param``."""
    return [
        state[key]
        for key in keys
        if isinstance(state.get(key), torch.Tensor)
        and state[key].numel() == param.numel()
        and state[key].dtype == param.dtype
    ]


@dataclasses.dataclass(frozen=True)
class LineSettings:
    """What a line needs from its optimizer, and nothing more.

    Args:
        probe: the main probe; ``guard``: a :class:`effopt.Guard` or None; ``model``: what the probes evaluate
            (eval mode around each call), or None; ``mode``: the main probe's ``"min"`` or ``"max"``;
            ``tolerance``: the margin a score must beat; ``direction``: rewrites the accumulated updates in place;
            ``foreach``: grouped kernels or a per-tensor loop; ``anchor_device``: where the anchors live (None: with
            their parameters).
    """

    probe: Callable[[], float] | None
    guard: GuardLike | None
    model: Sequence[torch.nn.Module] | None
    mode: str
    tolerance: float
    direction: Callable[[Sequence[torch.Tensor], int], None]
    foreach: bool
    anchor_device: torch.device | None

    @classmethod
    def of(cls, owner: object) -> LineSettings:
        """The settings read off any object with attributes of these names (an ExtrapolatingOptimizer), now."""
        return cls(**{field.name: getattr(owner, field.name) for field in dataclasses.fields(cls)})


class _Line:
    """The selected weights on the line ``theta(m) = theta_1 + (m - 1) * delta`` during one event.

    ``settings`` is a :class:`LineSettings`; ``params`` and ``anchors`` are the selected parameters with an anchor and
    their anchors, in the same order; ``record`` is the event's dict, which the line fills in.
    """

    def __init__(
        self,
        settings: LineSettings,
        params: list[torch.Tensor],
        anchors: list[torch.Tensor],
        step: int,
        record: Event,
        positions: Sequence[Sequence[torch.Tensor]] = (),
    ) -> None:
        self.settings, self.step, self.record = settings, step, record
        self.positions: dict[int, list[torch.Tensor]] = {}  # by id of the local parameter: state that moves with it
        self.m = 1.0  # where the weights are now
        self.swapped = 0  # chunks whose anchor buffer already holds theta_1
        self.baseline: float | None = None
        self.probing = False
        self.ops = _ForeachOps if settings.foreach else _LoopOps
        groups: dict[tuple[torch.device, torch.dtype], tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        for k, (p, a) in enumerate(zip(params, anchors)):
            local = _local(p)
            groups.setdefault((p.device, p.dtype), ([], []))
            groups[(p.device, p.dtype)][0].append(local)
            groups[(p.device, p.dtype)][1].append(_local(a))
            if k < len(positions) and positions[k]:
                self.positions[id(local)] = [_local(t) for t in positions[k]]
        self.chunks = [chunk for ps, xs in groups.values() for chunk in _chunked(ps, xs)]

    def improves(self, score: float, best: float) -> bool:
        """Whether ``score`` beats ``best`` by more than the tolerance (scores: lower is better)."""
        return score < best - self.settings.tolerance

    def value(self, m: float) -> float:
        """Move the weights to ``theta(m)`` and return the probe's score there (lower is better)."""
        m = float(m)
        if not (math.isfinite(m) and m > 0):
            raise ValueError(f"search: asked for multiplier {m!r}; expected a positive finite number")
        if self.baseline is None:
            self.baseline = self._probe()
        if m == 1.0:
            return self.baseline
        self._reach(m)
        return self._probe()

    def guard(self, m: float) -> float:
        """Move the weights to ``theta(m)`` and return the guard's score there (lower is better)."""
        self._reach(float(m))
        return cast(GuardLike, self.settings.guard).score(self.guard_value())  # called only with a guard

    def _reach(self, m: float) -> None:
        """Move the weights to ``theta(m)``; non-finite weights there (on any rank) end the event."""
        if m == self.m:
            return
        self._move(m)
        if _any_rank(not self._finite()):
            raise _Abort(f"non-finite weights at multiplier {m}")

    def guard_value(self) -> float:
        """The guard probe's value where the weights are now, in its own units."""
        value = self._call(cast(GuardLike, self.settings.guard).probe, "guard probe")  # called only with a guard
        self.record["guard"].append([self.m, value])
        if not math.isfinite(value):
            raise _Abort(f"non-finite guard value {value} at multiplier {self.m}")
        return value

    def _probe(self) -> float:
        value = self._call(cast(Callable[[], float], self.settings.probe), "probe")  # a searching line has one
        self.record["multipliers"].append(self.m)
        self.record["values"].append(value)
        if not math.isfinite(value):
            raise _Abort(f"non-finite probe value {value} at multiplier {self.m}")
        return value if self.settings.mode == "min" else -value

    def _call(self, probe: Callable[[], float], name: str) -> float:
        self.probing = True
        failed: Exception | None = None
        with _evaluating(self.settings.model or ()):
            try:
                value = probe()
            except Exception as err:  # joins the ranks' reduction first, so that no other rank waits in it forever
                failed, value = err, 0.0
        self.probing = failed is not None  # a value of the wrong type is the caller's error, not the probe raising
        total, failures = _sum_over_ranks([0.0 if failed else _real(value, name), float(failed is not None)])
        if failed is not None:
            raise failed
        if failures:
            self.probing = True
            raise RuntimeError(f"the {name} raised on {failures:g} other rank(s)")
        return total / (dist.get_world_size() if _distributed() else 1)

    def _move(self, m: float) -> None:
        if m == self.m:
            return
        if self.m == 1.0 and self.swapped:
            raise RuntimeError("search: the line cannot leave m = 1 once it has returned there")
        if self.m == 1.0:
            for ps, xs in self.chunks:  # delta = P - A; A <- P (= theta_1); P += (m - 1) * delta
                delta = self.ops.sub(ps, self._staged(ps, xs))
                self.settings.direction(delta, self.step)
                self.ops.copy_(xs, ps)
                self.ops.add_(ps, delta, m - 1.0)
                self.swapped += 1
        else:
            weight = 1.0 - (m - 1.0) / (self.m - 1.0)  # P <- theta_1 + w' (P - theta_1), as lerp(P, theta_1, 1 - w')
            for ps, xs in self.chunks:
                self.ops.lerp_(ps, self._staged(ps, xs), weight)
        self.m = m

    def _staged(self, ps: list[torch.Tensor], xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """The anchors on their parameters' device (a copy per chunk only when anchors are offloaded)."""
        if self.settings.anchor_device is None:
            return xs
        return [x.to(p.device, non_blocking=True) for p, x in zip(ps, xs)]

    def _finite(self) -> bool:
        return all(self.ops.finite(ps) for ps, _ in self.chunks)

    def finish(self, m: float) -> None:
        """End the event at ``theta(m)`` (``m = 1``: exactly the base step's weights); the anchor moves there."""
        self.probing = False
        if m != 1.0 and m != self.m:
            self._move(m)
            if _any_rank(not self._finite()):
                self.record["reason"] = f"non-finite weights at multiplier {m}"
                m = 1.0
        if m == 1.0:
            for ps, xs in self.chunks[: self.swapped]:
                self.ops.copy_(ps, xs)
            self.m = 1.0
        elif self.positions:  # the anchor buffers still hold theta_1: shift the base's positions by theta(m) - theta_1
            for ps, xs in self.chunks:
                for p, x in zip(ps, self._staged(ps, xs)):
                    for t in self.positions.get(id(p), ()):
                        t.add_((p - x).reshape(t.shape))
        for ps, xs in self.chunks[self.swapped :] if m == 1.0 else self.chunks:
            self.ops.copy_(xs, ps)


def _local(t: torch.Tensor) -> torch.Tensor:
    """The shard this rank holds of a DTensor (elementwise moves are shard-local), else the tensor itself."""
    return t.to_local() if hasattr(t, "to_local") else t


def _chunked(ps: list[torch.Tensor], xs: list[torch.Tensor]) -> Iterator[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    chunk_p: list[torch.Tensor]
    chunk_x: list[torch.Tensor]
    chunk_p, chunk_x, size = [], [], 0
    for p, x in zip(ps, xs):
        if chunk_p and size + p.numel() > CHUNK_NUMEL:
            yield chunk_p, chunk_x
            chunk_p, chunk_x, size = [], [], 0
        chunk_p.append(p)
        chunk_x.append(x)
        size += p.numel()
    if chunk_p:
        yield chunk_p, chunk_x


class _ForeachOps:
    """Grouped kernels over lists of same-device, same-dtype tensors."""

    # cast to the overload used here: staticmethod() alone would type it as the first (tensors minus scalars)
    sub = staticmethod(cast("Callable[[Tensors, Tensors], tuple[torch.Tensor, ...]]", torch._foreach_sub))

    @staticmethod
    def copy_(dst: Tensors, src: Tensors) -> None:
        if dst[0].device == src[0].device:
            torch._foreach_copy_(dst, src)
        else:
            for d, s in zip(dst, src):
                d.copy_(s, non_blocking=True)

    @staticmethod
    def add_(dst: Tensors, src: Tensors, alpha: float) -> None:
        # scales src in place: an alpha beyond the dtype's range gives inf, not an error
        torch._foreach_mul_(src, alpha)
        torch._foreach_add_(dst, src)

    @staticmethod
    def lerp_(dst: Tensors, end: Tensors, weight: float) -> None:
        torch._foreach_lerp_(dst, end, weight)

    @staticmethod
    def finite(ts: Tensors) -> bool:
        ts = [t for t in ts if t.numel()]  # the inf-norm has no identity: an empty shard (FSDP2, uneven) would raise
        return not ts or bool(torch.stack(torch._foreach_norm(ts, ord=math.inf)).isfinite().all())


class _LoopOps:
    """The same operations, one tensor at a time: the plain reference the foreach path is tested against."""

    @staticmethod
    def sub(a: Tensors, b: Tensors) -> list[torch.Tensor]:
        return [x - y for x, y in zip(a, b)]

    @staticmethod
    def copy_(dst: Tensors, src: Tensors) -> None:
        for d, s in zip(dst, src):
            d.copy_(s)

    @staticmethod
    def add_(dst: Tensors, src: Tensors, alpha: float) -> None:
        for d, s in zip(dst, src):
            d.add_(s.mul_(alpha))

    @staticmethod
    def lerp_(dst: Tensors, end: Tensors, weight: float) -> None:
        for d, e in zip(dst, end):
            d.lerp_(e, weight)

    @staticmethod
    def finite(ts: Tensors) -> bool:
        return all(bool(t.isfinite().all()) for t in ts)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _sum_over_ranks(values: list[float], group: Any = None) -> list[float]:
    """Each value summed over the ranks of `group` (None: the default group; gloo reduces on the CPU, NCCL on the
    current GPU); `values` where not distributed."""
    if not _distributed():
        return values
    device = "cpu" if dist.get_backend(group) == "gloo" else torch.cuda.current_device()
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, group=group)
    return cast(list[float], t.tolist())


def _any_rank(flag: bool) -> bool:
    return _sum_over_ranks([float(flag)])[0] > 0
