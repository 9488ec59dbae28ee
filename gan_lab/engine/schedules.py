"""Learning-rate multipliers as pure functions of the step (nanoGPT's ``get_lr`` idea).

A schedule is called as ``schedule(step, total_steps) -> factor`` and wrapped in a
``LambdaLR``, so resuming at step N gives the same rate as never stopping.
"""

from __future__ import annotations

import math


class Constant:
    """The rate stays at its configured value (the DCGAN, pix2pix and WGAN papers)."""

    def __call__(self, step: int, total: int) -> float:
        return 1.0


class LinearDecay:
    """Constant for the first ``start`` fraction of training, then linearly to zero
    (pix2pix/CycleGAN reference code: 100 epochs constant, 100 decaying)."""

    def __init__(self, start: float = 0.5):
        if not 0.0 <= start < 1.0:
            raise ValueError(f"schedule.start must be in [0, 1), got {start}")
        self.start = start

    def __call__(self, step: int, total: int) -> float:
        begin = self.start * total
        return 1.0 if step < begin else max(0.0, 1.0 - (step - begin) / max(1.0, total - begin))


class Cosine:
    """Linear warm-up for ``warmup`` steps, then cosine decay to ``floor`` times the rate."""

    def __init__(self, warmup: int = 0, floor: float = 0.0):
        self.warmup, self.floor = warmup, floor

    def __call__(self, step: int, total: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, total - self.warmup))
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
