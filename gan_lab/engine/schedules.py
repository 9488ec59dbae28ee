"""Learning-rate multipliers as pure functions of the step (nanoGPT's ``get_lr`` idea).

A schedule is built with its horizon ``total_steps`` (``${train.steps}`` when a run starts,
stored resolved in the checkpoint) and called as ``schedule(step) -> factor`` inside a
``LambdaLR``: resuming at step N gives the same rate as never stopping, and extending a run
(``resume=... train.steps=<more>``) keeps the stored horizon, so the rate stays continuous
(nanoGPT keeps ``lr_decay_iters`` apart from ``max_iters`` for the same reason).
"""

from __future__ import annotations

import math


def _horizon(total_steps) -> int:
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"schedule.total_steps must be a positive integer, got {total_steps!r}")
    return total_steps


class Constant:
    """The rate stays at its configured value (the DCGAN, pix2pix and WGAN papers)."""

    def __init__(self, total_steps: int = 1):
        self.total = _horizon(total_steps)

    def __call__(self, step: int) -> float:
        return 1.0


class LinearDecay:
    """Constant for the first ``start`` fraction of ``total_steps``, then linearly to zero at
    ``total_steps`` and zero after (pix2pix/CycleGAN reference code: 100 epochs constant, 100 decaying)."""

    def __init__(self, total_steps: int, start: float = 0.5):
        if not 0.0 <= start < 1.0:
            raise ValueError(f"schedule.start must be in [0, 1), got {start}")
        self.total, self.start = _horizon(total_steps), start

    def __call__(self, step: int) -> float:
        begin = self.start * self.total
        return 1.0 if step < begin else max(0.0, 1.0 - (step - begin) / max(1.0, self.total - begin))


class Cosine:
    """Linear warm-up for ``warmup`` steps, then cosine decay to ``floor`` times the rate at ``total_steps``."""

    def __init__(self, total_steps: int, warmup: int = 0, floor: float = 0.0):
        self.total, self.warmup, self.floor = _horizon(total_steps), warmup, floor

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class StepDecay:
    """The rate times ``factor`` every ``every`` steps (StackGAN and GAN-INT-CLS: halved every 100 epochs)."""

    def __init__(self, total_steps: int, every: int, factor: float = 0.5):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"schedule.every must be a positive integer, got {every!r}")
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"schedule.factor must be in (0, 1], got {factor}")
        self.total, self.every, self.factor = _horizon(total_steps), every, factor

    def __call__(self, step: int) -> float:
        return self.factor ** (step // self.every)
