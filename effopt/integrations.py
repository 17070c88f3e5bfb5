"""effopt where a framework builds and wraps the optimizer: transformers' Trainer, TRL's trainers, accelerate, FSDP2.

- :func:`extrapolating` turns a base optimizer class into an :class:`~effopt.ExtrapolatingOptimizer` class that a
  framework can build itself with ``cls(params, **kwargs)``: transformers' ``optimizer_cls_and_kwargs`` (the only way
  to pass an optimizer under FSDP), or any Trainer subclass through its ``optimizer_cls_and_kwargs`` attribute (TRL's
  trainers). Under DeepSpeed :class:`EffoptCallback` refuses to start (see there).
- :class:`EffoptCallback`, a transformers ``TrainerCallback``, gives that optimizer its probe once the Trainer has
  built it (a function of yours, or the Trainer's own evaluation loss) and sends every event to the Trainer's log
  (``trainer.state.log_history``; with ``trainer=``, every ``report_to`` backend too).
- :func:`event_metrics` flattens an event into ``effopt/...`` metrics for any logger.
- :func:`unwrap_optimizer` finds the ExtrapolatingOptimizer inside accelerate's or DeepSpeed's wrappers.
- :func:`reshard_after` makes a probe safe under FSDP2 (``fully_shard``); ``ExtrapolatingOptimizer(model=...)`` does
  the same for the probe it calls.

This module imports torch at import time and transformers only when :class:`EffoptCallback` is first used, so
``import effopt`` and ``import effopt.integrations`` stay torch-only.
"""

from __future__ import annotations

import copy
import inspect
import itertools
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch

from ._line import _evaluating, _reshard
from .optimizer import ExtrapolatingOptimizer

if TYPE_CHECKING:  # transformers is imported only where it is used, at run time
    from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

    from ._events import Event

__all__ = [
    "EffoptCallback",  # noqa: F822 (lazy: made by __getattr__ on first use)
    "event_metrics",
    "extrapolating",
    "reshard_after",
    "unwrap_optimizer",
]

#: The options of :class:`~effopt.ExtrapolatingOptimizer` that :func:`extrapolating` accepts.
OPTIONS = tuple(
    name for name in inspect.signature(ExtrapolatingOptimizer.__init__).parameters if name not in ("self", "optimizer")
)
_PIECES = ("schedule", "search", "direction", "step_scale", "budget")  # possibly stateful: each optimizer's own copy


class _ProbeNotSet:
    """The probe of an optimizer built by a framework before anyone gave it one: it says what to do."""

    def __call__(self) -> float:
        raise RuntimeError(
            "probe: this ExtrapolatingOptimizer was built from effopt.integrations.extrapolating() without a probe "
            "and none was set since; add effopt.integrations.EffoptCallback(probe) (or EffoptCallback(trainer=...)) "
            "to the Trainer's callbacks, pass probe= to extrapolating(), or set optimizer.probe yourself"
        )

    def __repr__(self) -> str:
        return "<probe not set>"


PROBE_NOT_SET = _ProbeNotSet()


def extrapolating(
    optimizer_cls: type[torch.optim.Optimizer] = torch.optim.AdamW, /, **options: Any
) -> type[ExtrapolatingOptimizer]:
    """A subclass of :class:`~effopt.ExtrapolatingOptimizer` whose ``cls(params, **kwargs)`` wraps
    ``optimizer_cls(params, **kwargs)`` with ``options``.

    Args:
        optimizer_cls: the base optimizer class (default ``torch.optim.AdamW``).
        options: the wrapper's keyword arguments (``probe``, ``model``, ``mode``, ``preset``, ``schedule``, ``search``,
            ``direction``, ``step_scale``, ``guard``, ``budget``, ``tolerance``, ``anchor_device``, ``foreach``,
            ``history``); the base optimizer's own (``lr``, ``weight_decay``, ...) go to the class when it is
            called. Without ``probe``, the optimizer's probe raises until one is set (see :class:`EffoptCallback`).

    Example, with transformers' Trainer (which calls ``cls(grouped_params, **kwargs)``)::

        Trainer(..., optimizer_cls_and_kwargs=(extrapolating(torch.optim.AdamW), {"lr": 1e-5}),
                callbacks=[EffoptCallback(validation_loss)])

    The options are checked here, so a mistake fails where it is written. Each optimizer the class builds gets its
    own copy of ``schedule``, ``search``, ``direction``, ``step_scale`` and ``budget`` (as a preset would) and of
    ``guard`` with its own reference (a shallow copy: the guard's probe is shared, as ``probe`` is).
    """
    if not (isinstance(optimizer_cls, type) and issubclass(optimizer_cls, torch.optim.Optimizer)):
        raise TypeError(
            f"optimizer_cls: expected a torch.optim.Optimizer subclass such as torch.optim.AdamW, got {optimizer_cls!r}"
        )
    if issubclass(optimizer_cls, ExtrapolatingOptimizer):
        raise TypeError(
            f"optimizer_cls: expected the base optimizer class, got {optimizer_cls.__name__}, which "
            "already extrapolates"
        )
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(
            f"extrapolating: unknown option(s) {unknown}; expected some of {list(OPTIONS)} (the base "
            "optimizer's own arguments, such as lr, go to the class when it is called)"
        )
    options = dict(options)
    if options.get("probe") is None:
        options["probe"] = PROBE_NOT_SET
    ExtrapolatingOptimizer(torch.optim.SGD([torch.zeros(1, requires_grad=True)]), **options)  # checks every value

    def __init__(self: ExtrapolatingOptimizer, params: Any, **kwargs: Any) -> None:
        own = {k: copy.deepcopy(v) if k in _PIECES else v for k, v in options.items()}
        if own.get("guard") is not None:
            own["guard"] = copy.copy(own["guard"])
            own["guard"].reference = None
        ExtrapolatingOptimizer.__init__(self, optimizer_cls(params, **kwargs), **own)

    # the class is made here, so pickle rebuilds it rather than looking it up
    def __reduce_ex__(self: ExtrapolatingOptimizer, protocol: int) -> tuple[Any, ...]:
        return _rebuild, (optimizer_cls, options), self.__getstate__()

    name = f"Extrapolating{optimizer_cls.__name__}"
    return type(
        name,
        (ExtrapolatingOptimizer,),
        {
            "__init__": __init__,
            "__reduce_ex__": __reduce_ex__,
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": f"``ExtrapolatingOptimizer({optimizer_cls.__name__}(params, **kwargs), **options)``, "
            "made by effopt.integrations.extrapolating().",
            "base_class": optimizer_cls,
            "options": options,
        },
    )


def _rebuild(optimizer_cls: type[torch.optim.Optimizer], options: dict[str, Any]) -> ExtrapolatingOptimizer:
    cls = extrapolating(optimizer_cls, **options)
    return cls.__new__(cls)


def unwrap_optimizer(optimizer: object) -> ExtrapolatingOptimizer:
    """The :class:`~effopt.ExtrapolatingOptimizer` inside ``optimizer``, following ``.optimizer`` through wrappers
    such as accelerate's ``AcceleratedOptimizer`` or DeepSpeed's; ``TypeError`` if there is none."""
    seen: list[str]
    seen, current = [], optimizer
    while current is not None and not isinstance(current, ExtrapolatingOptimizer) and len(seen) < 8:
        seen.append(type(current).__name__)
        current = getattr(current, "optimizer", None)
    if not isinstance(current, ExtrapolatingOptimizer):
        chain = " -> ".join(seen) or "None"
        raise TypeError(
            f"optimizer: expected an effopt.ExtrapolatingOptimizer, possibly inside wrappers; found {chain}. "
            "Build it with optimizer_cls_and_kwargs=(effopt.integrations.extrapolating(...), kwargs) or "
            "optimizers=(ExtrapolatingOptimizer(...), None)"
        )
    return current


def event_metrics(event: Event, prefix: str = "effopt/") -> dict[str, float]:
    """One event (an item of ``ExtrapolatingOptimizer.events``) as flat metrics for a logger: ``effopt/multiplier``
    (the accepted one), ``effopt/probe_value`` (the probe's value there, in its own units), ``effopt/guard_value``
    (the guard's, where a :class:`~effopt.Guard` read it there), ``effopt/stability`` and ``effopt/probe_seconds``
    (the event's time). A figure that is unknown (no probe value at the accepted point, as with a probe-free search;
    stability at the first event) or non-finite is left out: JSON loggers reject NaN."""
    accepted, probed = event["accepted"], event["multipliers"]
    value = event["values"][probed.index(accepted)] if accepted in probed else None
    guard = [v for m, v in event.get("guard", []) if m == accepted]
    metrics = {
        "multiplier": accepted,
        "probe_value": value,
        "guard_value": guard[-1] if guard else None,
        "stability": event["stability"],
        "probe_seconds": event["seconds"],
    }
    return {prefix + k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}


def reshard_after(probe: Callable[[], float], model: torch.nn.Module) -> Callable[[], float]:
    """``probe`` followed by resharding every FSDP2 (``fully_shard``) module of ``model``.

    FSDP2 leaves the root module's parameters gathered after a forward without gradients (the backward would gather
    them again), and a later forward reuses that gathered copy. The optimizer moves the shards between probe calls,
    so a probe that leaves them gathered evaluates stale weights from its second call on, and the next training step
    does too. Any probe under FSDP2 needs this; without FSDP2 it only calls ``probe``. Passing ``model=`` to
    :class:`~effopt.ExtrapolatingOptimizer` does the same (and runs the probe in eval mode).
    """
    if not callable(probe):
        raise TypeError(f"probe: expected a callable returning a float, got {type(probe).__name__}")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")

    def resharding_probe() -> float:
        try:
            return probe()
        finally:
            _reshard(model)

    return resharding_probe


class TrainerEvalLoss:
    """The Trainer's own evaluation loss as a probe: the mean, weighted by batch size, of ``trainer.prediction_step``
    (hence of its ``compute_loss``) over the first ``max_batches`` batches of its eval dataloader (all by default),
    on ``trainer.model`` in eval mode. The eval dataloader does not shuffle, so the batches are the same at every call;
    under several processes each sees its own share and the wrapper averages the values. Nothing is logged."""

    loader: Iterable[Any] | None  # the eval dataloader, made at the first call

    def __init__(self, trainer: Any, max_batches: int | None = None) -> None:
        if not all(hasattr(trainer, name) for name in ("get_eval_dataloader", "prediction_step", "model")):
            raise TypeError(f"trainer: expected a transformers Trainer, got {type(trainer).__name__}")
        if max_batches is not None and (
            isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches < 1
        ):
            raise ValueError(f"max_batches: expected a positive int or None, got {max_batches!r}")
        self.trainer, self.max_batches, self.loader = trainer, max_batches, None

    def __call__(self) -> float:
        from transformers.trainer_pt_utils import find_batch_size

        trainer = self.trainer
        if self.loader is None:
            if trainer.eval_dataset is None:
                raise ValueError(
                    "EffoptCallback(trainer=...): the Trainer has no eval_dataset to probe with; pass "
                    "eval_dataset= to the Trainer or a probe= function to EffoptCallback"
                )
            self.loader = trainer.get_eval_dataloader()
        total, count = 0.0, 0
        with _evaluating(trainer.model):
            for inputs in itertools.islice(self.loader, self.max_batches):
                loss, _, _ = trainer.prediction_step(trainer.model, inputs, prediction_loss_only=True)
                if loss is None:
                    raise ValueError(
                        "EffoptCallback(trainer=...): the Trainer's prediction_step gave no loss; the "
                        "eval dataset needs labels, or pass a probe= function to EffoptCallback"
                    )
                n = find_batch_size(inputs) or 1  # type: ignore[no-untyped-call, unused-ignore]
                total += float(loss) * n
                count += n
        if count == 0:
            raise ValueError("EffoptCallback(trainer=...): the eval dataloader gave no batch")
        return total / count


def _make_callback_class() -> type[TrainerCallback]:
    from transformers import TrainerCallback

    class EffoptCallback(TrainerCallback):
        """Gives the Trainer's :class:`~effopt.ExtrapolatingOptimizer` its probe when training begins, and sends its
        events to the Trainer's log.

        Args:
            probe: ``() -> float``, the probe (see :class:`~effopt.ExtrapolatingOptimizer`). Default: the Trainer's
                own evaluation loss (:class:`TrainerEvalLoss`) on its ``eval_dataset``, which takes ``trainer`` and
                an optimizer with ``mode="min"``.
            trainer: this Trainer; its log receives the events (below), and without ``probe`` it is what probes.
            max_batches: without ``probe``, evaluate only the first this many eval batches (default: all).

        Pass ``probe``, ``trainer`` or both. The optimizer may be inside accelerate's wrapper; after training begins it
        is :attr:`optimizer`, and its ``events`` the record of every event.

        Each step that ran an event adds a line to the Trainer's log at that step, whatever ``logging_steps`` is: the
        event's :func:`event_metrics` (``effopt/multiplier``, ``effopt/probe_value``, ``effopt/stability``,
        ``effopt/probe_seconds``); should several events have run since the last line, the last one's, with
        ``effopt/events`` saying how many. With ``trainer``, the line goes through ``transformers.Trainer.log`` itself,
        so it reaches ``trainer.state.log_history`` and every ``report_to`` backend, and a subclass's ``log`` (TRL's
        averages and clears its own running metrics there) is left to its own cadence. Without ``trainer`` (a
        callback made before the Trainer, ``callbacks=[EffoptCallback(probe)]``: the Trainer hands its callbacks its
        ``state``, never itself), the line, in the shape ``Trainer.log`` gives it, is appended to
        ``state.log_history`` (hence to every checkpoint's ``trainer_state.json``), and the ``report_to`` backends,
        which only ``Trainer.log`` reaches, do not see it; add the callback with
        ``trainer.add_callback(EffoptCallback(probe, trainer=trainer))`` for those.

        DeepSpeed is refused (``NotImplementedError`` when training begins): its ZeRO and mixed-precision optimizers
        step fp32 copies of the weights and write them into the model only after the optimizer's ``step``, so every
        probe inside an event would read the weights as they were before it.

        Under FSDP2 the Trainer's evaluation loss is followed by a reshard of ``trainer.model`` (see
        :func:`reshard_after`); with ``probe=``, wrap your probe with :func:`reshard_after` yourself, or build the
        optimizer with ``model=``.
        """

        def __init__(
            self,
            probe: Callable[[], float] | None = None,
            *,
            trainer: Trainer | None = None,
            max_batches: int | None = None,
        ) -> None:
            if probe is None and trainer is None:
                raise ValueError(
                    "EffoptCallback: pass probe= (a () -> float), trainer= (probe with the Trainer's own "
                    "evaluation loss, and log events there), or both (your probe; events logged)"
                )
            if probe is not None and not callable(probe):
                raise TypeError(f"probe: expected a callable returning a float, got {type(probe).__name__}")
            if probe is not None and max_batches is not None:
                raise ValueError("max_batches: only used without probe=; your probe chooses its own data")
            if trainer is not None and not all(hasattr(trainer, name) for name in ("state", "callback_handler")):
                raise TypeError(f"trainer: expected a transformers Trainer, got {type(trainer).__name__}")
            self.probe = probe if probe is not None else TrainerEvalLoss(trainer, max_batches)
            self.trainer = trainer
            self.optimizer: ExtrapolatingOptimizer | None = None
            self._last: Event | None = None  # the last event sent to the log

        def on_train_begin(
            self,
            args: TrainingArguments,
            state: TrainerState,
            control: TrainerControl,
            optimizer: object = None,
            **kwargs: Any,
        ) -> None:
            if getattr(args, "deepspeed", None) or getattr(args, "deepspeed_plugin", None) is not None:
                raise NotImplementedError(
                    "EffoptCallback: DeepSpeed is not supported: its optimizers step fp32 copies of the weights and "
                    "write them into the model only after the step, so the probe would read stale weights during an "
                    "event. Train without a deepspeed config (DDP or FSDP2 work, see effopt.integrations)"
                )
            opt = unwrap_optimizer(optimizer)
            if isinstance(self.probe, TrainerEvalLoss) and opt.mode != "min":
                raise ValueError(
                    f"EffoptCallback(trainer=...): probes with the eval loss (lower is better), but the "
                    f"optimizer has mode={opt.mode!r}; use mode='min' or pass your own probe="
                )
            opt.probe = self.probe
            self.optimizer, self._last = opt, (opt.events[-1] if opt.events else None)

        def on_step_end(
            self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
        ) -> None:
            if self.optimizer is None:
                return
            events = self.optimizer.events
            new = _since(events, self._last)
            if not new:
                return
            logs = event_metrics(events[-1])
            if new > 1:
                logs["effopt/events"] = new
            self._last = events[-1]
            if self.trainer is not None:
                from transformers import Trainer

                Trainer.log(self.trainer, logs)
                return
            # No Trainer to log through: the line Trainer.log would append, appended to the state it keeps it in
            if state.epoch is not None:
                logs["epoch"] = state.epoch
            if getattr(args, "include_num_input_tokens_seen", "no") not in ("no", False, None):
                logs["num_input_tokens_seen"] = state.num_input_tokens_seen
            state.log_history.append({**logs, "step": state.global_step})

    EffoptCallback.__module__ = __name__
    return EffoptCallback


def _since(events: list[Event], last: Event | None) -> int:
    """How many events come after ``last`` (the very dict, looked for from the end): all of them if ``last`` is None
    or has left a bounded history."""
    for back, event in enumerate(reversed(events)):
        if event is last:
            return back
    return len(events)


def __getattr__(name: str) -> Any:
    if name == "EffoptCallback":  # built on first use, so that importing this module does not import transformers
        cls = _make_callback_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"EffoptCallback"})
