"""CycleGAN of Zhu, Park, Isola and Efros 2017, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks" (ICCV 2017, arXiv 1703.10593; sections as in arXiv v7).

- Generators (§4 "Network Architecture" and App. 7.2 "Generator architectures", after Johnson et al.
  2016): ``c7s1-64, d128, d256, R256 x n, u128, u64, c7s1-3``: reflection-padded 7x7 convolutions at
  both ends, two stride-2 3x3 convolutions down, ``n`` residual blocks, two 3x3 fractionally-strided
  (stride 1/2) convolutions up; instance norm and ReLU after every layer but the last, which ends in
  tanh (the tanh is the code's; the paper's notation does not name the last activation). Blocks: the
  paper says "6 blocks for 128 × 128 images and 9 blocks for 256 × 256 and higher-resolution training
  images" (§4, again in App. 7.2); using 6 for every size below 256 (32 and 64 px here) extends that
  rule, the paper gives nothing below 128.
- Discriminators: "70 × 70 PatchGANs" (§4), with instance norm except on the first C64 layer and
  LeakyReLU 0.2 (App. 7.2 "Discriminator architectures": ``C64-C128-C256-C512``, then "a convolution to produce
  a 1-dimensional output"); here ``pix2pix.Discriminator`` with ``norm="instance"``. App. 7.2 calls every Ck
  "stride 2"; the code's C512 is stride 1, which is what gives the 70 px field and a 30x30 map at 256.
- Objective: adversarial losses (§3.1, eq. 1) + lambda * cycle L1 in both directions (§3.2, eq. 2;
  full objective §3.3, eq. 3), "we set λ = 10 in Equation 3" (§4 "Training details"); the negative log
  likelihood is replaced by a least-squares loss, G minimising ``E[(D(G(x)) - 1)^2]`` and D
  ``E[(D(y) - 1)^2] + E[D(G(x))^2]`` (§4 "Training details", after Mao et al.); "we divide the objective
  by 2 while optimizing D, which slows down the rate at which D learns, relative to the rate of G"
  (App. 7.1); D is updated "using a history of generated images" from "an image buffer that stores the
  50 previously created images" (§4 "Training details";
  :class:`gan_lab.models.translation.ImagePool`). Identity L1 ``E||G(y) - y||_1 + E||F(x) - x||_1``:
  introduced in §5.2 "Photo generation from paintings" (painting -> photo); its weight "was 0.5λ where λ
  was the weight for cycle consistency loss" is given in App. 7.1 only for Monet's paintings -> photos and
  flower photo enhancement (the code's default turns it on for every task).
- Training: "We use the Adam solver [26] with a batch size of 1", learning rate 0.0002, "the same learning
  rate for the first 100 epochs" then "linearly decay the rate to zero over the next 100 epochs" (§4
  "Training details", repeated in App. 7.1, which adds weights drawn from N(0, 0.02)). The Adam betas
  (0.5, 0.999) are the code's; the paper states none (configs/model/cyclegan.yaml).

The step follows the reference code (junyanz/pytorch-CycleGAN-and-pix2pix ``cycle_gan_model.py``): one G
phase over both generators with both D frozen, which hands its detached fakes to one D phase over both
discriminators on the same batch. Departures from that code, each an option: the pool draws from its own
seeded generator and is checkpointed (the code uses Python's ``random`` and saves no pool); convolutions
followed by instance norm have no bias (the norm's centring cancels it exactly, so the code's biases are
dead parameters); ``n_critic`` is not used (the code has one D update per step).

Sources: the quoted paper sentences and their sections were read in full-text copies of the paper (a
bilingual transcription of arXiv v7 with its section headings, a Korean translation keeping the same
headings, and verbatim quotes in other repositories); the 0.5λ sentence is also quoted by
LynnHo/CycleGAN-Tensorflow-2 #25, and the authors' docs/qa.md points to "Sec 5.2 'Photo generation from
paintings'" for the identity loss. Everything marked "the code's" was read in the reference code.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.base import LossOut, Phase
from gan_lab.models.blocks import ResnetBlock, conv_block, dcgan_init, norm_layer, reflect_conv
from gan_lab.models.translation import ImagePool, TwoWayTranslator, cycle_losses, identity_losses


def _up(in_ch: int, out_ch: int, norm: str) -> nn.Sequential:
    """``uk``: a 3x3 stride-2 transposed convolution that exactly doubles the size (output_padding 1),
    norm, ReLU."""
    has_norm = bool(norm) and norm != "none"
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 3, 2, 1, output_padding=1, bias=not has_norm),
                         norm_layer(norm, out_ch), nn.ReLU(inplace=True))


class ResnetGenerator(nn.Module):
    """(B, in_channels, S, S) -> (B, out_channels, S, S) in [-1, 1], S a multiple of 4.

    ``width``: channels of the first layer (64 in the paper; 32 keeps CPU runs short); ``n_blocks``:
    residual blocks at ``4 * width`` channels and S/4 pixels, None = 6 below 256 px, 9 from 256 px (the
    paper, §4: 6 at 128 px, 9 at 256 px and above; below 128 px it gives nothing); ``norm``: "instance"
    (the paper's, §4; affine=False is the code's) or any of ``blocks.NORMS``."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, image_size: int = 256, width: int = 64,
                 n_blocks: int | None = None, norm: str = "instance"):
        super().__init__()
        if image_size % 4 or image_size < 8:
            raise ConfigError(f"dataset.image_size={image_size}: the CycleGAN generator needs a multiple of 4, "
                              "at least 8 (it halves the image twice and doubles it back)")
        self.n_blocks = n_blocks if n_blocks is not None else (9 if image_size >= 256 else 6)
        layers = [reflect_conv(in_channels, width, 7, norm=norm, act="relu")]  # c7s1-64
        for ch in (width, 2 * width):  # d128, d256
            layers.append(conv_block(ch, 2 * ch, kernel=3, stride=2, padding=1, norm=norm, act="relu"))
        layers += [ResnetBlock(4 * width, norm) for _ in range(self.n_blocks)]  # R256 x n
        layers += [_up(4 * width, 2 * width, norm), _up(2 * width, width, norm)]  # u128, u64
        layers.append(reflect_conv(width, out_channels, 7, norm=None, act="tanh"))  # c7s1-3
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)  # N(0, 0.02), the code's init_type="normal"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CycleGAN(TwoWayTranslator):
    """CycleGAN's task: phases ``G`` (both generators) then ``D`` (both discriminators, same batch, on
    pooled fakes).

    G minimises ``adversarial_weight * (loss.g_loss(D_B(G_AB(a))) + loss.g_loss(D_A(G_BA(b))))
    + lambda_A * |G_BA(G_AB(a)) - a| + lambda_B * |G_AB(G_BA(b)) - b|
    + lambda_identity * (lambda_A * |G_BA(a) - a| + lambda_B * |G_AB(b) - b|)`` (means over pixels);
    D minimises ``d_weight * (loss.d_loss(D_A(a), D_A(pool_A(G_BA(b)))) + loss.d_loss(D_B(b), D_B(pool_B(G_AB(a)))))``.

    With ``loss=leastsquares`` (gan-lab's LSGAN: D ``½(D(x)-1)² + ½D(G(z))²``, G ``½(D(G(z))-1)²``), the
    reference is ``d_weight=1`` (the loss already holds the paper's halving, App. 7.1: the code's
    ``0.5 * (MSE(D(real), 1) + MSE(D(fake), 0))``) and ``adversarial_weight=2`` (the code's G cost
    ``MSE(D(G(x)), 1)``, the paper's ``E[(D(G(x)) - 1)^2]`` of §4, beside lambda = 10);
    configs/model/cyclegan.yaml sets both.

    ``pool_size``: history per domain (50; 0 = none); ``seed``: seeds the two pools (``2 seed`` and
    ``2 seed + 1``)."""

    def __init__(self, generator: Callable[..., nn.Module], discriminator: Callable[..., nn.Module],
                 loss: nn.Module, channels_A: int = 3, channels_B: int = 3, lambda_A: float = 10.0,
                 lambda_B: float = 10.0, lambda_identity: float = 0.5, pool_size: int = 50, seed: int = 0,
                 adversarial_weight: float = 1.0, d_weight: float = 1.0):
        super().__init__(generator, discriminator, loss, channels_A, channels_B)
        self.check_identity(lambda_identity, "model.lambda_identity")
        self.lambda_A, self.lambda_B, self.lambda_identity = lambda_A, lambda_B, lambda_identity
        self.adversarial_weight, self.d_weight = adversarial_weight, d_weight
        self.pools = nn.ModuleDict({"A": ImagePool(pool_size, 2 * seed), "B": ImagePool(pool_size, 2 * seed + 1)})

    def phases(self, step: int, n_critic: int) -> list[Phase]:
        return [Phase("G", self.g_loss), Phase("D", self.d_loss, fresh_batch=False)]

    def g_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        real_A, real_B = batch["A"], batch["B"]
        fake_A, fake_B = self.fakes(batch)
        adv_AB, adv_BA = self.adversarial(fake_A, fake_B)
        cycle_A, cycle_B = cycle_losses(self.G, real_A, real_B, fake_A, fake_B)
        loss = self.adversarial_weight * (adv_AB + adv_BA) + self.lambda_A * cycle_A + self.lambda_B * cycle_B
        stats = {"loss/G_AB": adv_AB.detach(), "loss/G_BA": adv_BA.detach(),
                 "loss/G_cycle_A": cycle_A.detach(), "loss/G_cycle_B": cycle_B.detach()}
        if self.lambda_identity:
            idt_A, idt_B = identity_losses(self.G, real_A, real_B)
            loss = loss + self.lambda_identity * (self.lambda_A * idt_A + self.lambda_B * idt_B)
            stats.update({"loss/G_idt_A": idt_A.detach(), "loss/G_idt_B": idt_B.detach()})
        stats["loss/G"] = loss.detach()
        # the D phase judges these (through the pools); G is unchanged until the next step
        return LossOut(loss, stats, {"fake_A": fake_A.detach(), "fake_B": fake_B.detach()})

    def d_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        if carry is None:  # called on its own: draw the fakes here
            with torch.no_grad():
                fake_A, fake_B = self.fakes(batch)
        else:
            fake_A, fake_B = carry["fake_A"], carry["fake_B"]
        loss, stats = self.discriminate(batch, self.pools["A"].query(fake_A), self.pools["B"].query(fake_B),
                                        self.d_weight)
        return LossOut(loss, stats)
