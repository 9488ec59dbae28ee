"""EBGAN of Zhao, Mathieu and LeCun 2017, "Energy-based Generative Adversarial Network" (ICLR, arXiv 1609.03126).

§2.3: the discriminator is an auto-encoder whose energy is its reconstruction error, D(x) = ||Dec(Enc(x)) - x||
(here the per-pixel mean squared error, as the public ports); the margin loss of §2.1 is
``gan_lab.losses.adversarial.EnergyMargin`` (``loss=energy``). §2.4: the repelling regulariser, the pull-away
term f_PT on the encoder codes S of a generated batch, added to G's loss with weight lambda_PT = 0.1 (EBGAN-PT).

Sizes here follow the DCGAN blocks (``gan_lab.models.dcgan``): the encoder halves the image down to 4x4 with
4x4 stride-2 convolutions (batch norm after the first, LeakyReLU 0.2), a linear layer to the code S, and the
decoder mirrors it with transposed convolutions to a linear output. The paper's exact 64 px channel counts
(its appendix) are not re-read here, and the section and equation numbers above are as recalled, not
verified against the PDF; lambda_PT = 0.1 and the loss forms are checked against the public ports
(TorchGAN, PyTorch-GAN, an EBGAN TensorFlow port), whose departures are: PyTorch-GAN's hinge on the batch
mean, its PT without the square and its detached reconstruction target; TorchGAN's PT normalised across
the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.models.base import LossOut
from gan_lab.models.blocks import conv_block, dcgan_init
from gan_lab.models.dcgan import _widths
from gan_lab.models.noise import NoiseToImage


def pull_away(codes: torch.Tensor) -> torch.Tensor:
    """f_PT(S) = 1 / (N (N - 1)) sum_{i != j} (S_i . S_j / (|S_i| |S_j|))^2 (§2.4, eq. 4): 0 for pairwise
    orthogonal codes, 1 for collinear ones, whatever their lengths; (N, ...) codes, N >= 2. Normalised per
    code and squared, which two public ports get wrong (see the module docstring)."""
    unit = F.normalize(codes.flatten(1), dim=1)
    cos2 = (unit @ unit.T).square()
    n = len(codes)
    return (cos2.sum() - cos2.diagonal().sum()) / (n * (n - 1))


class AutoencoderDiscriminator(nn.Module):
    """Images (B, C, S, S) -> energies (B,): the mean squared error of their reconstruction (§2.3).
    ``encode`` gives the codes S (B, code_dim) the pull-away term sees."""

    def __init__(self, image_size: int = 32, channels: int = 3, width: int = 32, code_dim: int = 128):
        super().__init__()
        ch = _widths(image_size, width)
        self.encoder = nn.Sequential(
            conv_block(channels, ch[0], norm=None, act="lrelu"),
            *(conv_block(a, b, act="lrelu") for a, b in zip(ch, ch[1:])),
            nn.Flatten(), nn.Linear(ch[-1] * 16, code_dim))
        up = ch[::-1]
        self.decoder = nn.Sequential(
            nn.Linear(code_dim, up[0] * 16), nn.Unflatten(1, (up[0], 4, 4)), nn.BatchNorm2d(up[0]),
            nn.LeakyReLU(0.2, inplace=True),
            *(conv_block(a, b, transpose=True, act="lrelu") for a, b in zip(up, up[1:])),
            conv_block(up[-1], channels, transpose=True, norm=None))
        self.apply(dcgan_init)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.decoder(self.encoder(x)) - x).square().flatten(1).mean(1)


class EBGANTask(NoiseToImage):
    """DCGAN-style G against the auto-encoder D under ``loss=energy``; G's loss adds ``pt_weight`` * f_PT of
    the generated batch's codes (0: plain EBGAN). G's gradient flows through both the reconstruction and the
    auto-encoder's input (no detach of G(z) as the reconstruction target; the PyTorch-GAN port detaches it)."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: nn.Module, pt_weight: float = 0.1,
                 reuse_fake: bool = True):
        super().__init__(generator, discriminator, loss, reuse_fake)
        if pt_weight < 0:
            raise ValueError(f"model.pt_weight must be >= 0, got {pt_weight}")
        self.pt_weight = pt_weight

    def g_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        if carry is None:
            inputs = self.sample_inputs(len(batch["real"]))
            carry = (inputs, self.generate(self.G, inputs))
        out = super().g_loss(batch, carry)
        if self.pt_weight == 0:
            return out
        pt = pull_away(self.D.encode(self.d_view(carry[1])))
        return LossOut(out.loss + self.pt_weight * pt, {**out.stats, "loss/G_pt": pt.detach()})
