"""DualGAN of Yi, Zhang, Tan and Gong 2017, "DualGAN: Unsupervised Dual Learning for Image-to-Image
Translation" (ICCV 2017, arXiv 1704.02510).

- Networks (§3.2): two identical U-Net generators with skips between mirrored layers, as pix2pix's
  (``pix2pix.Generator``, here with instance norm), and Markovian PatchGAN discriminators
  (``pix2pix.Discriminator``). The paper's noise input z was replaced by dropout in the code (author,
  duxingren14/DualGAN #22), whose default rate is 0.
- Objective (§3.1): WGAN critics, ``D(fake) - D(real)`` per domain (``loss=wasserstein``), and for the
  generators ``lambda_U |u - G_BA(G_AB(u))| + lambda_V |v - G_AB(G_BA(v))| - D_B(G_AB(u)) - D_A(G_BA(v))``
  (the recovery loss is L1, "we adopt L1 distance"; lambda_U, lambda_V "typically ... within [100.0,
  1,000.0]"; quoted from the paper in the spec). Here domain A is the paper's U and B its V.
- Training (§3.3, Algorithm 1): RMSProp, lr 5e-5, ``n_critic`` = 2 critic steps per generator step, each
  followed by clipping every critic weight to [-c, c], c = 0.01, batch 1-4; the generator step draws its
  own batch. The clipping is ``gan_lab.tricks.weight_clipping`` (configs/model/dualgan.yaml includes it);
  it clips ``task.D``, both critics.

These training values (n_critic 2, lr 5e-5, c 0.01, batches of 1-4) and all the section numbers above are
recalled from the paper, not re-read against it (spec tag [paper†]); the two quotes come from the spec, which
read them in a scribd copy. A later check found no readable copy of the paper's text (full-text pages,
repositories, issue threads, the official duxingren14/DualGAN README), so all of this stays unverified;
only a reading note (ocean1100/Reading, GAN/DualGAN.md, under "Training procedure") agrees on the RMSProp
solver and batches of 1-4. The reference code departs from the paper: its 2017 version
(d7ee5b8) trains a sigmoid cross-entropy GAN with one D step then two G steps on the same batch
(``loss=nonsaturating ~tricks.weight_clipping train.n_critic=1 model.g_repeats=2 model.fresh_g_batch=false``);
its 2020 version defaults to WGAN-GP with n_critic 1 (no gradient-penalty plug-in here). Its "batch_norm"
is an instance norm with a learned scale and centre, used in G here (``norm: instance_affine``); the
critics use instance norm without parameters, so clipping touches only convolutions (clipped scales
would all be 0.01).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from gan_lab.models.base import LossOut, Phase
from gan_lab.models.translation import TwoWayTranslator, cycle_losses


class DualGAN(TwoWayTranslator):
    """DualGAN's task: ``n_critic`` critic phases (both critics), then ``g_repeats`` generator phases.

    ``lambda_A`` / ``lambda_B``: the paper's lambda_U / lambda_V on the L1 recovery of A / B;
    ``fresh_g_batch``: the generator phase draws its own batch (Algorithm 1) or reuses the critic's last."""

    def __init__(self, generator: Callable[..., nn.Module], discriminator: Callable[..., nn.Module],
                 loss: nn.Module, channels_A: int = 3, channels_B: int = 3, lambda_A: float = 500.0,
                 lambda_B: float = 500.0, g_repeats: int = 1, fresh_g_batch: bool = True):
        super().__init__(generator, discriminator, loss, channels_A, channels_B)
        if isinstance(g_repeats, bool) or not isinstance(g_repeats, int) or g_repeats < 1:
            raise ValueError(f"model.g_repeats must be a positive integer, got {g_repeats!r}")
        self.lambda_A, self.lambda_B = lambda_A, lambda_B
        self.g_repeats, self.fresh_g_batch = g_repeats, fresh_g_batch

    def phases(self, step: int, n_critic: int) -> list[Phase]:
        return [Phase("D", self.d_loss, repeats=n_critic),
                Phase("G", self.g_loss, repeats=self.g_repeats, fresh_batch=self.fresh_g_batch)]

    def d_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        with torch.no_grad():
            fake_A, fake_B = self.fakes(batch)
        loss, stats = self.discriminate(batch, fake_A, fake_B)
        return LossOut(loss, stats)

    def g_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        fake_A, fake_B = self.fakes(batch)
        adv_AB, adv_BA = self.adversarial(fake_A, fake_B)
        rec_A, rec_B = cycle_losses(self.G, batch["A"], batch["B"], fake_A, fake_B)
        loss = adv_AB + adv_BA + self.lambda_A * rec_A + self.lambda_B * rec_B
        return LossOut(loss, {"loss/G": loss.detach(), "loss/G_AB": adv_AB.detach(), "loss/G_BA": adv_BA.detach(),
                              "loss/G_recovery_A": rec_A.detach(), "loss/G_recovery_B": rec_B.detach()})
