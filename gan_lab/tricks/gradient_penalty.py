"""The WGAN-GP gradient penalty (Gulrajani et al. 2017, "Improved Training of Wasserstein
GANs", §4 and Algorithm 1): lambda * E (||grad D(xhat)|| - center)^2 on random
interpolates of real and generated samples, lambda = 10, center = 1. ``center=0`` gives
the zero-centred variant of Thanh-Tung et al. 2019 ("Improving Generalization and
Stability of GANs")."""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.losses.penalties import gradient_penalty
from gan_lab.models.terms import CriticPass
from gan_lab.tricks.base import Penalty, positive


class GradientPenalty(Penalty):
    name = "gp"

    def __init__(self, lambda_: float = 10.0, center: float = 1.0):
        self.lambda_ = positive(lambda_, "tricks.gradient_penalty.lambda_")
        self.center = center

    def penalty(self, D: nn.Module, seen: CriticPass) -> torch.Tensor:
        return gradient_penalty(D, seen.real, seen.fake, seen.cond, lambda_=self.lambda_, center=self.center)
