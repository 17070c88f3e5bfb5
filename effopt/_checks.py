"""Argument checks shared by the pieces of an extrapolation event, and the wrapper's small helpers."""

from __future__ import annotations

import math
from typing import Any, cast

import torch


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    return float(value)


def _through_base(name: str) -> property:
    """An attribute of the wrapped base optimizer, read and written through."""
    return property(
        lambda self: getattr(self.optimizer, name), lambda self, value: setattr(self.optimizer, name, value)
    )


def _is_zero(lr: Any) -> bool:
    return bool(lr == 0)


def _shown(probe: Any) -> str | None:
    """A probe for a repr: a function's name, an object's own repr, or its class's name."""
    if probe is None or getattr(probe, "__qualname__", None):
        return cast("str | None", probe and probe.__qualname__)
    return type(probe).__name__ if type(probe).__repr__ is cast(Any, object.__repr__) else repr(probe)


def _describe(value: object) -> str:
    if isinstance(value, (list, tuple)):
        bad = [type(v).__name__ for v in value if not isinstance(v, torch.nn.Module)]
        return f"a {type(value).__name__} holding {bad[0]}" if bad else f"an empty {type(value).__name__}"
    return type(value).__name__


def _models(model: Any) -> tuple[torch.nn.Module, ...]:
    """The ``model=`` argument as a tuple of modules (a module, or a non-empty list or tuple of them)."""
    models = model if isinstance(model, (list, tuple)) else [model]
    if not (models and all(isinstance(m, torch.nn.Module) for m in models)):
        raise TypeError(f"model: expected a torch.nn.Module or a non-empty list/tuple of them, got {_describe(model)}")
    return tuple(models)
