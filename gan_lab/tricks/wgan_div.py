"""The WGAN-div penalty (Wu et al. 2018, "Wasserstein Divergence for GANs"): k * E ||grad D(xhat)||^p
on random interpolates of real and generated samples; with it the critic's objective is the
Wasserstein divergence W_{k,p}, which needs no Lipschitz constraint. k = 2, p = 6 were best
in the paper's search over k and p."""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.losses.penalties import wgan_div_penalty
from gan_lab.models.terms import CriticPass
from gan_lab.tricks.base import Penalty, positive


class WassersteinDivergence(Penalty):
    name = "wgan_div"

    def __init__(self, k: float = 2.0, p: float = 6.0):
        self.k = positive(k, "tricks.wgan_div.k")
        if not p > 1:  # W_{k,p} is a divergence for k > 0, p > 1
            raise ValueError(f"tricks.wgan_div.p must be greater than 1, got {p}")
        self.p = p

    def penalty(self, D: nn.Module, seen: CriticPass) -> torch.Tensor:
        return wgan_div_penalty(D, seen.real, seen.fake, seen.cond, k=self.k, p=self.p)
