"""The R1 regulariser (Mescheder et al. 2018, "Which Training Methods for GANs do actually
Converge?", §4.1, eq. 9): gamma / 2 * E ||grad D(x)||^2 on real data, which makes
GAN training locally convergent (Theorem 4.1). gamma = 10, the value of the paper's
high-resolution image experiments."""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.losses.penalties import r1_penalty
from gan_lab.models.terms import CriticPass
from gan_lab.tricks.base import Penalty, positive


class R1(Penalty):
    name = "r1"

    def __init__(self, gamma: float = 10.0):
        self.gamma = positive(gamma, "tricks.r1.gamma")

    def penalty(self, D: nn.Module, seen: CriticPass) -> torch.Tensor:
        return r1_penalty(D, seen.real, seen.cond, gamma=self.gamma)  # real data only, with an input gradient
