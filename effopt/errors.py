"""What an extrapolation event raises or warns about when it cannot finish as searched."""

from __future__ import annotations

__all__ = ["ExtrapolationWarning", "ProbeError"]


class ProbeError(RuntimeError):
    """The probe raised during an event. The weights are back where the base step left them; ``__cause__`` is the
    probe's own exception."""

    def __init__(self, message: str, step: int, multiplier: float) -> None:
        super().__init__(message)
        self.step, self.multiplier = step, multiplier


class ExtrapolationWarning(RuntimeWarning):
    """An event ended at ``m = 1`` on a non-finite probe value or non-finite weights (warned once per optimizer)."""
