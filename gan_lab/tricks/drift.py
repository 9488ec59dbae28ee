"""The drift penalty of Progressive GAN (Karras et al. 2018, Appendix A.1): eps_drift * E D(x)^2
on real samples, added to the critic's loss. The Wasserstein loss fixes the critic's output only
up to a constant; this small term keeps it from drifting far from zero. eps_drift = 0.001.
D(x) is the critic's output on the real batch in the D step's loss (after instance noise, if any),
reused: the term costs no forward pass."""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.models.terms import CriticPass
from gan_lab.tricks.base import Penalty, positive


class Drift(Penalty):
    name = "drift"

    def __init__(self, eps_drift: float = 0.001):
        self.eps_drift = positive(eps_drift, "tricks.drift.eps_drift")

    def penalty(self, D: nn.Module, seen: CriticPass) -> torch.Tensor:
        return self.eps_drift * seen.real_logits.float().square().mean()
