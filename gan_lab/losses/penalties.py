"""Penalties on the discriminator's gradient with respect to its input, added to D's loss.

- Gradient penalty, WGAN-GP (Gulrajani et al. 2017, "Improved Training of Wasserstein
  GANs", Algorithm 1): lambda * E (||grad D(xhat)||_2 - 1)^2 at random interpolates
  xhat = eps x + (1 - eps) G(z), eps ~ U[0, 1] per sample: a soft 1-Lipschitz constraint.
- WGAN-div (Wu et al. 2018, "Wasserstein Divergence for GANs", the W-div objective):
  k * E ||grad D(xhat)||^p, a divergence needing no Lipschitz constraint; the paper's
  search found k = 2, p = 6 best. xhat are the same interpolates, as in the authors' code
  (musikisomorphie/wgan-div, wgan_div.py).
- R1 (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?",
  §4.1, eq. 9): gamma / 2 * E ||grad D(x)||^2 on real data only.

The input gradients are taken with ``create_graph=True``, so the penalty's own gradient
reaches D's weights (double backpropagation). ``cond`` holds D's extra arguments (the
cGAN labels): those of the real batch, which the interpolates are labelled with too.
"""

from __future__ import annotations

import torch
from torch import nn


def interpolates(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """eps * real + (1 - eps) * fake with one eps ~ U[0, 1] per sample (WGAN-GP, Algorithm 1).

    eps comes from the global torch RNG: latents and data have streams of their own, so adding a
    penalty changes neither."""
    eps = torch.rand(len(real), *[1] * (real.dim() - 1), device=real.device)
    return eps * real + (1 - eps) * fake  # also promotes a bf16 fake (autocast) to the data's float32


def input_gradients(D: nn.Module, x: torch.Tensor, cond: tuple = ()) -> torch.Tensor:
    """grad_x D(x), one flattened row per sample, itself differentiable with respect to D's weights.

    The gradient of the summed outputs is each sample's own gradient when D treats
    samples independently, which is why penalised critics have no batch norm."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x, *cond).sum(), x, create_graph=True)
    return grad.flatten(1)


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, cond: tuple = (),
                     lambda_: float = 10.0, center: float = 1.0) -> torch.Tensor:
    """lambda * E (||grad D(xhat)|| - center)^2 on interpolates (WGAN-GP: lambda = 10, center = 1).

    A D made of K independent critics, critic k on the k-th of K equal slices of the input's channels
    (``D.critics = K``, D's output (B, K): MuseGAN's jamming model), gets one penalty per critic, on its
    own slice's gradient, averaged over critics as the Wasserstein loss averages their outputs."""
    grad = input_gradients(D, interpolates(real, fake), cond)
    norms = grad.view(len(grad), getattr(D, "critics", 1), -1).norm(dim=2)
    return lambda_ * (norms - center).square().mean()


def wgan_div_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, cond: tuple = (),
                     k: float = 2.0, p: float = 6.0) -> torch.Tensor:
    """k * E ||grad D(xhat)||^p on interpolates (WGAN-div: k = 2, p = 6)."""
    squared = input_gradients(D, interpolates(real, fake), cond).square().sum(1)
    return k * squared.pow(p / 2).mean()  # ||g||^p without the square root's infinite slope at 0


def r1_penalty(D: nn.Module, real: torch.Tensor, cond: tuple = (), gamma: float = 10.0) -> torch.Tensor:
    """gamma / 2 * E ||grad D(x)||^2 on real samples (R1)."""
    return 0.5 * gamma * input_gradients(D, real, cond).square().sum(1).mean()
