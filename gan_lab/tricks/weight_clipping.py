"""Weight clipping of the WGAN critic (Arjovsky et al. 2017, "Wasserstein GAN", §3 and
Algorithm 1): after every critic update each parameter is clipped to [-c, c], c = 0.01,
so the critic ranges over a compact set of K-Lipschitz functions and its loss estimates
K * W1(p_data, p_g). Batch-norm scales and shifts are parameters and are clipped too, as
in the authors' code; running statistics are buffers and are not."""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.tricks.base import Trick, positive


class WeightClipping(Trick):
    """Clip every parameter of ``task.D`` to [-c, c] after each D step."""

    def __init__(self, c: float = 0.01):
        self.c = positive(c, "tricks.weight_clipping.c")

    def setup(self, task: nn.Module) -> None:
        self.clip(task)  # the critic is in the box from its first evaluation, as the reference code has it

    def after_phase(self, task: nn.Module, player: str, step: int) -> None:
        if player == "D":
            self.clip(task)

    @torch.no_grad()
    def clip(self, task: nn.Module) -> None:
        params = list(task.D.parameters())
        torch._foreach_clamp_min_(params, -self.c)
        torch._foreach_clamp_max_(params, self.c)
