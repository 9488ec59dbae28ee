"""Exponential moving average of the generator's weights.

Samples and evaluation use the averaged generator, which is smoother than the
live one (Karras et al. 2018, "Progressive Growing of GANs", §A.1; Yazici et al.
2019, "The Unusual Effectiveness of Averaging in GAN Training").
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from gan_lab.tricks.base import Trick


class EMA(Trick):
    """``avg = decay * avg + (1 - decay) * G`` after every generator step; buffers are copied."""

    def __init__(self, decay: float = 0.999):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"tricks.ema.decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.module: nn.Module | None = None

    def setup(self, task: nn.Module) -> None:
        self.module = copy.deepcopy(task.G).eval().requires_grad_(False)

    def after_g_step(self, task: nn.Module) -> None:
        self.update(task.G)

    @torch.no_grad()
    def update(self, generator: nn.Module) -> None:
        torch._foreach_lerp_(list(self.module.parameters()), list(generator.parameters()), 1.0 - self.decay)
        for avg, live in zip(self.module.buffers(), generator.buffers()):
            avg.copy_(live)  # batch-norm statistics follow the live generator

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
