"""Searching a trained generator's latent space for given images, with the networks frozen.

AnoGAN's mapping of a query image to the latent space (Schlegl et al. 2017, "Unsupervised Anomaly Detection
with Generative Adversarial Networks to Guide Marker Discovery", IPMI, §2.2) and iGAN's projection of a real
photo onto the generator's manifold (Zhu et al. 2016, "Generative Visual Manipulation on the Natural Image
Manifold", ECCV, §3.1) are one loop with different losses: minimise a per-image loss over z by gradient
descent while G (and D, when the loss reads its features) stay fixed. :func:`search` is that loop; the
losses live with their commands.

Every image has its own z and its own loss, and Adam's update is elementwise, so searching a batch gives
each image the z it would get alone: the networks must be in eval mode (:func:`frozen`), since train-mode
batch norm mixes the images of a batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """``modules`` in eval mode with ``requires_grad`` off for the duration: gradients reach only the
    search variable, and no parameter or batch-norm buffer changes. Modes and flags are restored after."""
    params = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    modes = [(m, m.training) for module in modules for m in module.modules()]
    try:
        for module in modules:
            module.eval()
        for p, _ in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in params:
            p.requires_grad_(flag)
        for m, mode in modes:
            m.train(mode)


def search(loss: Callable[[torch.Tensor], torch.Tensor], z0: torch.Tensor, steps: int, lr: float,
           bounds: tuple[float, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``loss(z) -> (B,)``, one loss per row of ``z``, from ``z0`` by ``steps`` Adam steps of
    rate ``lr`` on the sum (so row ``i`` moves by its own loss's gradient only). With ``bounds`` z is
    clamped into them after every step (the support of a uniform prior). Returns (z, loss(z)) at the end,
    both detached. Wrap the call in :func:`frozen` for the networks ``loss`` runs."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    z = z0.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss(z).sum().backward()
        optimizer.step()
        if bounds is not None:
            with torch.no_grad():
                z.clamp_(*bounds)
    with torch.no_grad():
        return z.detach(), loss(z).detach()
