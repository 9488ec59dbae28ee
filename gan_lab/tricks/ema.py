"""Exponential moving average of the generator's weights.

Samples and evaluation use the averaged generator, which is smoother than the
live one (Karras et al. 2018, "Progressive Growing of GANs", §A.1; Yazici et al.
2019, "The Unusual Effectiveness of Averaging in GAN Training").

A fixed decay keeps ``decay ** t`` of the initial random weights after ``t``
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

    ``beta = decay``, or with ``rampup`` the smaller ``0.5 ** (1 / (rampup * t))`` at update ``t``
    (a half-life of ``rampup * t`` updates); ``rampup=None`` keeps ``decay`` from the first update."""

    def __init__(self, decay: float = 0.999, rampup: float | None = 0.05):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"tricks.ema.decay must be in (0, 1), got {decay}")
        if rampup is not None and not rampup > 0:
            raise ValueError(f"tricks.ema.rampup must be positive or null, got {rampup}")
        self.decay, self.rampup = decay, rampup
        self.updates = 0
        self.module: nn.Module | None = None

    def setup(self, task: nn.Module) -> None:
        self.module = copy.deepcopy(task.G).eval().requires_grad_(False)

    def after_g_step(self, task: nn.Module) -> None:
        self.update(task.G)

    def beta(self, t: int) -> float:
        """The weight of the old average at update ``t`` (1-based)."""
        if self.rampup is None:
            return self.decay
        return min(self.decay, math.pow(0.5, 1.0 / (self.rampup * t)))

    @torch.no_grad()
    def update(self, generator: nn.Module) -> None:
        self.updates += 1
        weight = 1.0 - self.beta(self.updates)
        torch._foreach_lerp_(list(self.module.parameters()), list(generator.parameters()), weight)
        for avg, live in zip(self.module.buffers(), generator.buffers()):
            avg.copy_(live)  # batch-norm statistics follow the live generator

    def state_dict(self) -> dict:
        return {"generator": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["generator"])
        self.updates = int(state["updates"])
