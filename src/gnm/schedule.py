"""The one curriculum type: a value that moves linearly between two training steps.

It lives in its own tiny module (no imports from the rest of the package) so that both the
model config and the top-level :mod:`gnm.config` can use it without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Schedule:
    """A value that moves linearly from ``start`` to ``end`` between two training steps.

    Before ``start_step`` it is ``start``; after ``end_step`` it is ``end``. When
    ``end_step <= start_step`` it is a step function: ``start`` up to and including
    ``start_step``, ``end`` after it. Every curriculum of the paper (τ, ρ, β_g warm-up, β_b,
    aux-where weight, foreground-mask forcing) is one of these.
    """

    start_step: int = 0
    end_step: int = 0
    start: float = 1.0
    end: float = 1.0

    def __call__(self, step: int | float) -> float:
        """Value at ``step`` (a pure function of the step)."""
        if step <= self.start_step or self.end_step <= self.start_step:
            return self.start if step <= self.start_step else self.end
        if step >= self.end_step:
            return self.end
        t = (step - self.start_step) / (self.end_step - self.start_step)
        return self.start + t * (self.end - self.start)

    @classmethod
    def constant(cls, value: float) -> Schedule:
        """A schedule that is ``value`` at every step."""
        return cls(0, 0, value, value)

    @classmethod
    def until(cls, step: int, value: float, after: float = 0.0) -> Schedule:
        """A step function: ``value`` up to and including ``step``, ``after`` from then on."""
        return cls(step, step, value, after)
