"""Exponential moving average of the generator's weights.

Samples and evaluation use the averaged generator, which is smoother than the
live one (Karras et al. 2018, "Progressive Growing of GANs", §A.1; Yazici et al.
2019, "The Unusual Effectiveness of Averaging in GAN Training").

The average is the task's ``G_ema`` (checkpointed with the players' weights, used by
every sampling site through ``task.sampling_generator()``). A fixed decay keeps ``decay ** t`` of the initial random weights after ``t``
updates (22% after 1500 steps at 0.999), so by default the averaging horizon
ramps up with training as in StyleGAN2-ADA (Karras et al. 2020, training_loop.py
``ema_rampup``): the average's half-life is at most ``rampup * t`` updates.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from gan_lab.tricks.base import Trick


class EMA(Trick):
    """``avg = beta * avg + (1 - beta) * G`` after every generator step; buffers are copied.

    ``beta = decay``, or with ``rampup`` the smaller ``0.5 ** (1 / (rampup * t))`` at step ``t``
    (a half-life of ``rampup * t`` steps); ``rampup=None`` keeps ``decay`` from the first step."""

    def __init__(self, decay: float = 0.999, rampup: float | None = 0.05):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"tricks.ema.decay must be in (0, 1), got {decay}")
        if rampup is not None and not rampup > 0:
            raise ValueError(f"tricks.ema.rampup must be positive or null, got {rampup}")
        self.decay, self.rampup = decay, rampup

    def setup(self, task: nn.Module) -> None:
        task.G_ema = copy.deepcopy(task.G).eval().requires_grad_(False)

    def after_phase(self, task: nn.Module, player: str, step: int) -> None:
        if player == "G":
            self.update(task.G_ema, task.G, step)

    def beta(self, t: int) -> float:
        """The weight of the old average at update ``t`` (1-based)."""
        if self.rampup is None:
            return self.decay
        return min(self.decay, math.pow(0.5, 1.0 / (self.rampup * t)))

    @torch.no_grad()
    def update(self, average: nn.Module, generator: nn.Module, step: int) -> None:
        weight = 1.0 - self.beta(step)
        torch._foreach_lerp_(list(average.parameters()), list(generator.parameters()), weight)
        for avg, live in zip(average.buffers(), generator.buffers()):
            avg.copy_(live)  # batch-norm statistics follow the live generator
