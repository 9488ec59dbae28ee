"""Adversarial losses, computed from the raw discriminator outputs.

Cross-entropy games (Goodfellow et al. 2014): every game shares the discriminator's
cost and differs only in the generator's cost (Goodfellow 2016, "NIPS 2016 Tutorial:
Generative Adversarial Networks", §3.2). The output is a logit; working on logits with
``softplus`` keeps the costs finite where ``log(sigmoid(.))`` underflows:
``-log D = softplus(-l)`` and ``-log(1 - D) = softplus(l)``.

Games on an unbounded score (a "critic", whose output is no probability):
Wasserstein (Arjovsky et al. 2017, "Wasserstein GAN", eq. 3 and Algorithm 1), hinge
(Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018, "Spectral Normalization for
GANs", eq. 16-17) and least squares (Mao et al. 2017, "Least Squares Generative
Adversarial Networks", eq. 2 with the 0-1 coding of eq. 9).

Each loss also names the statistics logged at every D step (:meth:`d_stats`):
probabilities for the cross-entropy games, mean raw outputs for the others.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AdversarialLoss(nn.Module):
    """D minimises the cross-entropy of real (label 1) against fake (label 0):
    -E log D(x) - E log(1 - D(G(z))) (Goodfellow et al. 2014, eq. 1). Its minimum
    over D is reached at D* = p_data / (p_data + p_g) (Proposition 1).

    ``real_target`` < 1 is one-sided label smoothing (Salimans et al. 2016, §3.4; set by
    ``gan_lab.tricks.label_smoothing``): real examples get the target alpha, fakes keep 0, and
    the optimum becomes D* = alpha p_data / (p_data + p_g)."""

    def __init__(self, real_target: float = 1.0):
        super().__init__()
        self.real_target = real_target

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return self.real_term(real_logits) + self.fake_term(fake_logits)

    def real_term(self, logits: torch.Tensor) -> torch.Tensor:
        """D's cost on examples labelled real: the cross-entropy with target t,
        -t log D - (1 - t) log(1 - D) = t softplus(-l) + (1 - t) softplus(l), averaged."""
        t = self.real_target
        real = F.softplus(-logits)
        if t != 1.0:
            real = t * real + (1.0 - t) * F.softplus(logits)
        return real.mean()

    def fake_term(self, logits: torch.Tensor) -> torch.Tensor:
        """D's cost on examples labelled fake: -log(1 - D) = softplus(l), averaged."""
        return F.softplus(logits).mean()

    def d_stats(self, loss: torch.Tensor, real_logits: torch.Tensor,
                fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """The scalars logged at every D step: its loss and its mean probability of "real"."""
        return {
            "loss/D": loss.detach(),
            "D(x)": torch.sigmoid(real_logits.detach()).mean(),
            "D(G(z))": torch.sigmoid(fake_logits.detach()).mean(),
        }

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


class CriticLoss(nn.Module):
    """Base of the games whose D output is an unbounded score, not the logit of a
    probability: the logged "D(x)" and "D(G(z))" are its mean raw outputs."""

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_stats(self, loss: torch.Tensor, real_out: torch.Tensor, fake_out: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss/D": loss.detach(), "D(x)": real_out.detach().mean(), "D(G(z))": fake_out.detach().mean()}


class Wasserstein(CriticLoss):
    """The critic maximises E D(x) - E D(G(z)), G minimises -E D(G(z)) (Arjovsky et al.
    2017, eq. 3, Algorithm 1). With D restricted to (K-)Lipschitz functions (weight
    clipping, a gradient penalty: ``gan_lab.tricks``) the maximum is K * W1(p_data, p_g),
    so the logged ``wasserstein_estimate`` tracks sample quality (§4.2)."""

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return fake_out.mean() - real_out.mean()

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return -fake_out.mean()

    def d_stats(self, loss: torch.Tensor, real_out: torch.Tensor, fake_out: torch.Tensor) -> dict[str, torch.Tensor]:
        stats = super().d_stats(loss, real_out, fake_out)
        return {**stats, "wasserstein_estimate": stats["D(x)"] - stats["D(G(z))"]}


class Hinge(CriticLoss):
    """D minimises E relu(1 - D(x)) + E relu(1 + D(G(z))), the SVM margin loss; G
    minimises -E D(G(z)) as in WGAN (Lim & Ye 2017; Miyato et al. 2018, eq. 16-17).
    Samples beyond the margin (D(x) >= 1, D(G(z)) <= -1) no longer move D."""

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - real_out).mean() + F.relu(1.0 + fake_out).mean()

    g_loss = Wasserstein.g_loss


class LeastSquares(CriticLoss):
    """D minimises 1/2 E (D(x) - 1)^2 + 1/2 E D(G(z))^2 and G minimises 1/2 E (D(G(z)) - 1)^2:
    Mao et al. 2017, eq. 2 with a = 0, b = c = 1 (eq. 9). The optimal D is
    p_data / (p_data + p_g) (eq. 4), so "D(x)" and "D(G(z))" read like probabilities."""

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return 0.5 * (real_out - 1.0).square().mean() + 0.5 * fake_out.square().mean()

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return 0.5 * (fake_out - 1.0).square().mean()


class EnergyMargin(CriticLoss):
    """Energy-based GAN (Zhao et al. 2017, §2.1, eq. 1-2): D outputs an energy (low on data) and minimises
    E D(x) + E [m - D(G(z))]^+, the hinge taken per sample; G minimises E D(G(z)). Fakes whose energy
    reaches the margin ``m`` no longer move D. ``m`` is in the units of D's energy (gan_lab.models.ebgan:
    the per-pixel mean squared reconstruction error)."""

    def __init__(self, margin: float = 1.0):
        super().__init__()
        if not margin > 0:
            raise ValueError(f"loss.margin must be positive, got {margin}")
        self.margin = margin

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return real_out.mean() + F.relu(self.margin - fake_out).mean()

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return fake_out.mean()

    def d_stats(self, loss: torch.Tensor, real_out: torch.Tensor, fake_out: torch.Tensor) -> dict[str, torch.Tensor]:
        return {**super().d_stats(loss, real_out, fake_out),
                "fakes_at_margin": (fake_out.detach() >= self.margin).float().mean()}
