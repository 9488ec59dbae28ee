"""Adversarial losses of the original GAN games, computed from discriminator logits.

Every game shares the discriminator's cross-entropy cost and differs only in the
generator's cost (Goodfellow 2016, "NIPS 2016 Tutorial: Generative Adversarial
Networks", §3.2). Working on logits with ``softplus`` keeps the costs finite where
``log(sigmoid(.))`` underflows: ``-log D = softplus(-l)`` and ``-log(1 - D) = softplus(l)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AdversarialLoss(nn.Module):
    """D minimises the cross-entropy of real (label 1) against fake (label 0):
    -E log D(x) - E log(1 - D(G(z))) (Goodfellow et al. 2014, eq. 1). Its minimum
    over D is reached at D* = p_data / (p_data + p_g) (Proposition 1)."""

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class NonSaturating(AdversarialLoss):
    """G minimises -log D(G(z)) (Goodfellow et al. 2014, §3): the same fixed point as
    the minimax game, but strong gradients while D still rejects the samples."""

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_logits).mean()


class Minimax(AdversarialLoss):
    """G minimises log(1 - D(G(z))), the zero-sum game of Goodfellow et al. 2014,
    eq. 1. It saturates: the gradient vanishes when D confidently rejects fakes (§3)."""

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -F.softplus(fake_logits).mean()


class MaxLikelihood(AdversarialLoss):
    """G minimises -1/2 E exp(sigma^-1(D(G(z)))) (Goodfellow 2016 tutorial, §3.2.4,
    eq. 14, after Goodfellow 2014, "On distinguishability criteria for estimating
    generative models"): with an optimal D, exp(logit) = p_data / p_g and the
    expected gradient is that of KL(p_data || p_g), i.e. maximum likelihood.

    sigma^-1(D) is the logit itself, so no sigmoid is inverted. The cost is unbounded
    by nature: logits above ~88 overflow float32, which the engine reports as a
    non-finite loss rather than this class hiding it behind a clamp."""

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -0.5 * fake_logits.exp().mean()


def d_stats(loss: torch.Tensor, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """The scalars logged at every D step: its loss and its mean probability of "real"."""
    return {
        "loss/D": loss.detach(),
        "D(x)": torch.sigmoid(real_logits.detach()).mean(),
        "D(G(z))": torch.sigmoid(fake_logits.detach()).mean(),
    }
