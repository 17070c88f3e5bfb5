"""ExtrapolatingOptimizer: wrap any torch optimizer; at scheduled steps, move the weights along the update they have
accumulated since an anchor, as far as a probe says it pays.

An event after the base step at step ``t`` (``theta_1`` = the weights that step left, ``A`` = the anchor)::

    delta = direction(theta_1 - A)                      # the accumulated update, optionally denoised
    m* = search(line)                                   # line.value(m) probes theta(m) = theta_1 + (m - 1) * delta
    m* = guard(line, m*)                                # optional: shortens m* where a second probe would break
    theta = theta(m*);  A = theta                       # the anchor moves to the accepted point

With the accumulated update, ``theta(m) = A + m * (theta_1 - A)``: EffOPD's rule. The base optimizer's state and
learning rate are never touched.

Memory: one anchor per selected parameter, in the parameter's dtype, kept in the base optimizer's per-parameter state
under ``"effopt_anchor"`` (so a checkpoint is an ordinary optimizer checkpoint), optionally on another device. Candidate
points need no third copy: the first move swaps roles, the anchor buffer then holds ``theta_1`` exactly and the
parameters hold ``theta(m)``; later candidates are reached in place by ``theta(m') = theta_1 + (m' - 1) / (m - 1) *
(theta(m) - theta_1)``, a foreach lerp. Going back to ``m = 1`` is a copy, so a failed event restores ``theta_1`` bit for
bit. Only the first move holds a transient copy of one chunk of ``delta`` (at most ``effopt._line.CHUNK_NUMEL``
elements). The line itself, and the model and rank helpers it needs, live in ``effopt/_line.py``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast, overload

import torch

from ._checks import _is_zero, _models, _shown, _through_base
from ._events import Event, new_event
from ._line import LineSettings, _Abort, _Line, _positions
from ._stability import SKETCH_NUMEL, _cosine, _sketch  # noqa: F401 (SKETCH_NUMEL: re-exported, as before)
from .errors import ExtrapolationWarning, ProbeError
from .policies import Accumulated, Backoff, Greedy, Guard, PowersOfTwo, ProbeBudget, Quadratic, StepScale

ANCHOR = "effopt_anchor"  #: key of the anchor in the base optimizer's per-parameter state
STEP = "effopt_step"  #: key of the counted steps, in every param group
SCHEDULE = "effopt_schedule"  #: key of a stateful schedule's state_dict(), in every param group
STEP_SCALE = "effopt_step_scale"  #: key of the step scale's state_dict(), in every param group
GUARD = "effopt_guard"  #: key of the guard's state_dict() (its reference), in every param group
BUDGET = "effopt_budget"  #: key of the probe budget's state_dict() (its counts), in every param group
POSITIONS = ("p0", "z")  #: state entries moved with the weights: Prodigy's start, schedule-free AdamW's z sequence
COUNTS = "effopt_counts"  #: key of the running counts {"events": run, "moves": accepted m != 1}, in every param group

#: Named sets of pieces. "effopd" is the published rule; "default" is effopt's own choice for a smooth loss probe.
PRESETS: dict[str, Callable[[], dict[str, Any]]] = {
    "effopd": lambda: {"schedule": PowersOfTwo(), "search": Greedy((3, 5, 7, 9, 11)), "direction": Accumulated()},
    "default": lambda: {
        "schedule": Backoff(10),
        "search": Quadratic(),
        "direction": Accumulated(),
        "step_scale": StepScale(),
    },
}


class ExtrapolatingOptimizer(torch.optim.Optimizer):
    r"""Wraps ``optimizer``; after each of its steps, at scheduled steps, extrapolates the selected parameters.

    Args:
        optimizer: the base ``torch.optim.Optimizer``; its param groups choose what moves through the group option
            ``extrapolate`` (default ``True``; see :func:`effopt.extrapolation_groups`).
        probe: ``probe() -> float``, called with the weights at candidate points, under ``torch.no_grad()``. It should
            be deterministic given the weights (fixed data, its own RNG) and, without ``model``, switch the model to
            eval mode itself if it needs to. Required unless the search is probe-free (:class:`effopt.Fixed`).
        model: a ``torch.nn.Module`` (or a list or tuple of them) that the probe evaluates. Each probe call then runs
            with it in eval mode, and every submodule's ``training`` flag is restored exactly afterwards (also when
            the probe raises); every FSDP2 (``fully_shard``) module in it is resharded after each call, so the next
            call sees the moved weights (see :func:`effopt.integrations.reshard_after`). Not part of the checkpoint.
        mode: ``"min"`` if lower probe values are better (a loss, the default), ``"max"`` if higher are (accuracy).
        preset: ``"default"`` (:class:`~effopt.Backoff` events: every 10 steps while extrapolation pays, backing off
            while it does not; a :class:`~effopt.Quadratic` line search; a :class:`~effopt.StepScale`) or
            ``"effopd"`` (the published rule: powers of two, :class:`~effopt.Greedy` over 3, 5, 7, 9, 11, strict
            improvement, the base lr as given). ``schedule``, ``search``, ``direction`` and ``step_scale`` replace
            the preset's pieces.
        schedule: ``schedule(step) -> bool``; ``step`` counts base steps taken with a non-zero learning rate.
        search: ``search(line) -> multiplier`` (see :mod:`effopt.searches`).
        direction: ``direction(deltas, step)``, may rewrite the accumulated updates in place.
        step_scale: a persistent step size (:class:`~effopt.StepScale`): the selected groups' lr is multiplied by its
            ``factor`` inside every base step (and restored right after, so an lr scheduler still owns ``lr``); it
            hears each event's accepted multiplier. None: the preset's (``StepScale()`` in the default preset; none,
            the base lr as given, in ``"effopd"``); ``StepScale(high=1)`` keeps the base lr fixed.
        guard: a :class:`~effopt.Guard`: a second probe (what post-training must keep) that no accepted move may
            push more than its budget past its value at the first event. None (the default): no guard.
        budget: a :class:`~effopt.ProbeBudget`: what probe calls may cost, counted in base steps. The schedule then
            hears an event whose saving, ``(m - 1)`` times the steps since the last event, did not cover its calls'
            cost as one that accepted nothing, and events wait while the probe's time net of the savings is past a
            share of the time. None (the default): every scheduled event runs, whatever its probe costs.
        tolerance: a candidate counts as better only if it beats the best score by more than this, in the probe's
            units (default 0: strict improvement, as published). Guards against accepting noise.
        anchor_device: keep anchors on this device (e.g. ``"cpu"`` for large models); default: the parameter's.
        foreach: use the grouped ``torch._foreach_*`` kernels (default) or a plain per-tensor loop (``False``).
        positions: names of the base's per-parameter state entries that are points in weight space (default
            :data:`POSITIONS`). An accepted move shifts them with the weights, so the distances the base measures
            from them (Prodigy's step-size estimate) are those it would have seen without the move. Entries of
            another size or dtype (Prodigy's ``p0`` under ``slice_p > 1``) are left alone; ``()`` shifts nothing.
        history: how many of the latest events :attr:`events` keeps (default 1000; ``None``: all, which grows
            without bound over a long run). :attr:`events_run` and :attr:`moves_accepted` count every event, and
            are part of the checkpoint; the events themselves are not.

    Every event appends a dict (an :class:`~effopt._events.Event`) to the list :attr:`events`, which then drops its
    oldest items beyond ``history``: ``step``, ``multipliers`` and ``values`` (each point probed, in order, the
    baseline ``m = 1`` first; values in the probe's own units), ``guard`` (the guard's ``[m, value]`` pairs, in order;
    empty without a guard), ``accepted``, ``seconds``, ``reason``
    (empty, or why the event ended at ``m = 1``) and ``stability``: the cosine between this event's accumulated update
    and the previous event's (None at the first event, and after a ``load_state_dict``), estimated on a fixed sample
    of about ``SKETCH_NUMEL`` coordinates per tensor. Near 1, the update keeps its direction from window to window,
    which is when extrapolating along it pays; near 0, successive windows point in unrelated directions.

    If the probe raises, the weights are restored, the anchor moves to them, and :class:`ProbeError` (naming the step)
    is raised from the probe's exception; a probe (or guard probe) value that is not one real number (a string, None,
    a complex number, a tensor of several elements) ends the event the same way with a TypeError. A non-finite value
    or non-finite candidate weights end the event at ``m = 1`` too, without raising. Under ``torch.distributed``,
    probe values are averaged over ranks so every rank accepts the same multiplier.
    """

    _step_supports_amp_scaling = False  # GradScaler unscales for us and skips step() on inf/NaN gradients

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        probe: Callable[[], float] | None = None,
        *,
        model: torch.nn.Module | Sequence[torch.nn.Module] | None = None,
        mode: str = "min",
        preset: str = "default",
        schedule: Callable[[int], bool] | None = None,
        search: Callable[[Any], float] | None = None,
        direction: Callable[[Sequence[torch.Tensor], int], None] | None = None,
        step_scale: StepScale | None = None,
        guard: Guard | None = None,
        budget: ProbeBudget | None = None,
        tolerance: float = 0.0,
        anchor_device: torch.device | str | None = None,
        foreach: bool = True,
        history: int | None = 1000,
        positions: Sequence[str] = POSITIONS,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if isinstance(optimizer, ExtrapolatingOptimizer):
            raise TypeError("optimizer: already an ExtrapolatingOptimizer; wrap the base optimizer once")
        if probe is not None and not callable(probe):
            raise TypeError(f"probe: expected a callable returning a float, got {type(probe).__name__}")
        model = None if model is None else _models(model)
        if mode not in ("min", "max"):
            raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
        if preset not in PRESETS:
            raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {preset!r}")
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
            raise ValueError(f"tolerance: expected a number >= 0, got {tolerance!r}")
        if isinstance(positions, str) or not all(isinstance(key, str) for key in positions):
            raise TypeError(f"positions: expected a sequence of state key names, got {positions!r}")
        if history is not None and (isinstance(history, bool) or not isinstance(history, int) or history < 0):
            raise ValueError(f"history: expected an int >= 0 or None, got {history!r}")
        pieces = PRESETS[preset]()
        for name, piece in (("schedule", schedule), ("search", search), ("direction", direction)):
            if piece is not None and not callable(piece):
                raise TypeError(f"{name}: expected a callable, got {type(piece).__name__}")
        self.schedule = schedule if schedule is not None else pieces["schedule"]
        self.search = search if search is not None else pieces["search"]
        self.direction = direction if direction is not None else pieces["direction"]
        self.step_scale = step_scale if step_scale is not None else pieces.get("step_scale")
        if self.step_scale is not None and not hasattr(self.step_scale, "factor"):
            raise TypeError(
                f"step_scale: expected an object with a `factor` (e.g. effopt.StepScale()), got "
                f"{type(self.step_scale).__name__}"
            )
        if guard is not None and not (callable(guard) and hasattr(guard, "reference") and hasattr(guard, "probe")):
            raise TypeError(f"guard: expected an effopt.Guard, got {type(guard).__name__}")
        if guard is not None and probe is None:
            raise ValueError("probe: a guard needs the main probe too (a shortened move must still beat m = 1 on it)")
        self.guard = guard
        if budget is not None and not all(hasattr(budget, name) for name in ("allows", "observe", "begin_step")):
            raise TypeError(f"budget: expected an effopt.ProbeBudget, got {type(budget).__name__}")
        self.budget = budget
        if probe is None and getattr(self.search, "needs_probe", True):
            raise ValueError(f"probe: the search {self.search!r} calls a probe; pass probe= or a probe-free search")

        self.optimizer = optimizer
        self.probe, self.mode, self.tolerance, self.foreach = probe, mode, float(tolerance), bool(foreach)
        self.model: tuple[torch.nn.Module, ...] | None = model
        self.anchor_device = None if anchor_device is None else torch.device(anchor_device)
        self.history = history
        self.positions = tuple(positions)
        self.events: list[Event] = []  # the latest `history` events, oldest first
        self._pending: dict[torch.Tensor, torch.Tensor] = {}  # anchors taken before the base state exists
        self._complete = False  # every selected parameter has an anchor or a pending one
        self._sketch: torch.Tensor | None = None  # the previous event's update at the sampled coordinates
        self._warned = False  # a non-finite event has been warned about

        # torch.optim.Optimizer.__init__ would build a second param_groups/state: set what it sets, minus those.
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()
        self._optimizer_state_dict_pre_hooks = OrderedDict()
        self._optimizer_state_dict_post_hooks = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        self._optimizer_load_state_dict_post_hooks = OrderedDict()
        self._patch_step_function()

        self.defaults.setdefault("extrapolate", True)
        for group in self.param_groups:
            group.setdefault("extrapolate", True)
            self._own_keys(group)
        if not any(group["extrapolate"] and group["params"] for group in self.param_groups):
            raise ValueError(
                "optimizer: no parameter is selected for extrapolation (every group has extrapolate=False)"
            )

    # The base optimizer owns these; the wrapper reads and writes through, never caching an alias.
    param_groups = _through_base("param_groups")
    state = _through_base("state")
    defaults = _through_base("defaults")

    @property
    def step_count(self) -> int:
        """Base steps counted so far (steps with every learning rate 0 are not counted)."""
        return cast(int, self.param_groups[0][STEP])

    @property
    def events_run(self) -> int:
        """Events run so far, including those :attr:`events` no longer keeps (part of the checkpoint)."""
        return cast(int, self.param_groups[0][COUNTS]["events"])

    @property
    def moves_accepted(self) -> int:
        """Events so far that moved the weights (accepted a multiplier other than 1; part of the checkpoint)."""
        return cast(int, self.param_groups[0][COUNTS]["moves"])

    def __repr__(self) -> str:
        model = None if self.model is None else [type(m).__name__ for m in self.model]
        return (
            f"ExtrapolatingOptimizer({self.optimizer!r}, probe={_shown(self.probe)}, model={model}, "
            f"mode={self.mode!r}, schedule={self.schedule!r}, search={self.search!r}, direction={self.direction!r}, "
            f"step_scale={self.step_scale!r}, guard={self.guard!r}, budget={self.budget!r}, "
            f"tolerance={self.tolerance}, anchor_device={self.anchor_device}, foreach={self.foreach}, "
            f"history={self.history}, positions={self.positions})"
        )

    # --- torch.optim.Optimizer API ------------------------------------------------------------------------------------

    @overload
    def step(self, closure: None = None) -> None: ...
    @overload
    def step(self, closure: Callable[[], float]) -> float: ...
    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One base step (running ``closure`` once, with gradients, if given), then an event if one is scheduled."""
        if self.budget is not None:
            self.budget.begin_step(time.perf_counter())
        if not self._complete:
            for param in self._selected():
                if param not in self._pending and ANCHOR not in self.state.get(param, ()):
                    self._pending[param] = self._snapshot(param)
            self._complete = True
        scaled = self._scale_lrs()
        try:
            if closure is None:
                loss = self.optimizer.step()
            else:
                loss = self.optimizer.step(torch.enable_grad()(closure))
        finally:  # the scheduler's lr, exactly as it was: the scale only ever lives inside the base step
            for group, lr in scaled:
                group["lr"] = lr
        if self._pending:
            for param in [p for p in self._pending if p.grad is not None]:  # the base has initialised its state now
                self.state[param][ANCHOR] = self._pending.pop(param)

        lrs = [group["lr"] for group in self.param_groups if "lr" in group]
        if lrs and all(_is_zero(lr) for lr in lrs):
            return loss  # an initialising step (torch.distributed.checkpoint) moves nothing: not counted, no event
        step = self.param_groups[0][STEP] + 1
        for group in self.param_groups:
            group[STEP] = step
        if self.schedule(step) and (self.budget is None or self.budget.allows(step)):
            record = self._record(step)
            try:
                self._event(step, record)
            finally:  # stateful pieces hear of every event, a failed one too (as accepting nothing)
                counts = {"events": self.events_run + 1, "moves": self.moves_accepted + (record["accepted"] != 1.0)}
                for group in self.param_groups:
                    group[COUNTS] = dict(counts)
                heard = record["accepted"] if self.budget is None else self.budget.observe(step, record)
                for key, piece in self._stateful():
                    if piece is self.schedule and hasattr(piece, "observe"):  # what paid, once the budget has said
                        piece.observe(step, heard)
                    elif piece is not self.budget and hasattr(piece, "observe"):
                        piece.observe(step, record["accepted"])
                    if hasattr(piece, "state_dict"):
                        for group in self.param_groups:
                            group[key] = dict(piece.state_dict())
        return loss

    def _stateful(self) -> list[tuple[str, Any]]:
        pieces = [(SCHEDULE, self.schedule), (STEP_SCALE, self.step_scale), (GUARD, self.guard), (BUDGET, self.budget)]
        return [(key, piece) for key, piece in pieces if piece is not None]

    def _scale_lrs(self) -> list[tuple[dict[str, Any], Any]]:
        """Multiplies the selected groups' lr by the step scale's factor; returns (group, lr as it was) to restore."""
        factor = 1.0 if self.step_scale is None else self.step_scale.factor
        if factor == 1.0:
            return []
        scaled = [(group, group["lr"]) for group in self.param_groups if group["extrapolate"] and "lr" in group]
        for group, lr in scaled:
            group["lr"] = lr * factor
        return scaled

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.optimizer.add_param_group(param_group)
        self._own_keys(self.param_groups[-1], like=self.param_groups[0])
        self._complete = False

    def _own_keys(self, group: dict[str, Any], like: dict[str, Any] | None = None) -> None:
        """Every key the wrapper keeps in a param group, from the start: a checkpoint template made before the first
        event (torch.distributed.checkpoint loads only the keys its template has) then has room for each."""
        like = like or {}
        group.setdefault(STEP, like.get(STEP, 0))
        group.setdefault(COUNTS, dict(like.get(COUNTS, {"events": 0, "moves": 0})))
        for key, piece in self._stateful():
            if hasattr(piece, "state_dict"):
                group.setdefault(key, dict(piece.state_dict()))

    def state_dict(self) -> dict[str, Any]:
        if self.budget is not None and BUDGET in self.param_groups[0]:  # its timings move every step, not at events
            for group in self.param_groups:
                group[BUDGET] = dict(self.budget.state_dict())
        return super().state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a checkpoint of this wrapper or of the bare base optimizer (which then keeps the current selection
        and starts counting steps from 0; anchors are taken again at the next step)."""
        flags = [group["extrapolate"] for group in self.param_groups]
        super().load_state_dict(state_dict)
        for group, flag in zip(self.param_groups, flags):
            group.setdefault("extrapolate", flag)
            self._own_keys(group)
        for key, piece in self._stateful():
            if key in self.param_groups[0] and hasattr(piece, "load_state_dict"):
                piece.load_state_dict(self.param_groups[0][key])
        self._pending.clear()
        self._complete = False
        self._sketch = None
        if self.anchor_device is not None:  # Optimizer.load_state_dict moved every state tensor to its param's device
            for param in self._selected():
                state = self.state.get(param, {})
                if ANCHOR in state:
                    state[ANCHOR] = state[ANCHOR].to(self.anchor_device)

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "optimizer" in state:  # unpickling or deepcopy of the wrapper
            self.__dict__.update(state)
            self._patch_step_function()
        else:  # Optimizer.load_state_dict hands over the loaded {"state", "param_groups"}: they belong to the base
            self.optimizer.__setstate__(state)

    def train(self) -> None:
        """Delegates to the base optimizer's ``train()`` where it has one (schedule-free); otherwise nothing."""
        if hasattr(self.optimizer, "train"):
            self.optimizer.train()

    def eval(self) -> None:
        """Delegates to the base optimizer's ``eval()`` where it has one (schedule-free); otherwise nothing."""
        if hasattr(self.optimizer, "eval"):
            self.optimizer.eval()

    # --- The event ----------------------------------------------------------------------------------------------------

    def _selected(self) -> Iterator[torch.Tensor]:
        for group in self.param_groups:
            if group["extrapolate"]:
                yield from (p for p in group["params"] if p.requires_grad)

    def _snapshot(self, param: torch.Tensor) -> torch.Tensor:
        if self.anchor_device is None:
            return param.detach().clone()
        return param.detach().to(self.anchor_device, copy=True)

    def _record(self, step: int) -> Event:
        """A new event's record, appended to :attr:`events` (filled in as the event runs)."""
        record = new_event(step)
        self.events.append(record)
        if self.history is not None and len(self.events) > self.history:
            del self.events[: len(self.events) - self.history]
        return record

    def _event(self, step: int, record: Event | None = None) -> None:
        record = self._record(step) if record is None else record
        params, anchors = [], []
        for param in self._selected():
            state = self.state.get(param)
            if state is not None and ANCHOR in state:
                params.append(param)
                anchors.append(state[ANCHOR])
            elif param not in self._pending:  # swapped in after the last snapshot: anchored from here on
                self._pending[param] = self._snapshot(param)
        if not params:
            record["reason"] = "no selected parameter has been updated yet"
            return
        start = time.perf_counter()
        sketch = _sketch(params, anchors)  # the update on sampled coordinates, against the previous event's
        previous, self._sketch = self._sketch, sketch
        record["stability"] = _cosine(sketch, previous)
        positions = [_positions(self.state.get(param, {}), param, self.positions) for param in params]
        line = _Line(LineSettings.of(self), params, anchors, step, record, positions)
        try:
            if self.guard is not None and self.guard.reference is None:
                self.guard.reference = line.guard_value()
            accepted = float(self.search(line))
            if not (math.isfinite(accepted) and accepted > 0):
                raise ValueError(f"search: returned multiplier {accepted!r}; expected a positive finite number")
            if self.guard is not None and accepted != 1.0:
                accepted = float(self.guard(line, accepted))
            line.finish(accepted)
        except _Abort as abort:
            record["reason"] = str(abort)
            line.finish(1.0)
        except BaseException as err:
            probing, multiplier = line.probing, line.m
            line.finish(1.0)
            record["reason"] = f"{type(err).__name__}: {err}"
            record["seconds"] = time.perf_counter() - start
            if probing:
                raise ProbeError(
                    f"the probe raised during the extrapolation event after step {step} (multiplier {multiplier}); "
                    "the weights are back where the base step left them",
                    step,
                    multiplier,
                ) from err
            raise
        record["accepted"] = line.m
        record["seconds"] = time.perf_counter() - start
        if record["reason"] and not self._warned:  # only the non-finite endings get here with a reason
            self._warned = True
            warnings.warn(
                f"effopt: the extrapolation event after step {step} ended at m = 1: {record['reason']}; "
                "further such events are not warned about (see opt.events)",
                ExtrapolationWarning,
            )
