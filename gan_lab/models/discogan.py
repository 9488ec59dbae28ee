"""DiscoGAN of Kim, Cha, Kim, Lee and Kim 2017, "Learning to Discover Cross-Domain Relations with Generative
Adversarial Networks" (ICML 2017, arXiv 1703.05192).

- Networks (the paper's §2.2 "Notation and Architecture"; the layer details are the code's
  ``discogan/model.py``): an encoder-decoder generator without skips, 4x4 stride-2 convolutions with batch
  norm and LeakyReLU 0.2 down to 4x4 (no norm on the first), 4x4 stride-2 transposed convolutions with
  batch norm and ReLU back up; a discriminator of the same encoder ending in a 4x4 valid convolution to
  one logit. §2.2 (read only in two Korean summaries, not in the English text) gives 64x64x3 images, 4x4
  convolutions with leaky ReLU in the encoder, 4x4 deconvolutions with ReLU in the decoder, four to five
  layers "depending on the domain", and a discriminator that is the encoder plus a 4x4 convolution and a
  sigmoid; the code uses 4 down and 4 up at 64 px. The depth here is ``log2(image_size) - 2``, so 32 px
  has one block fewer each way (the 64 px D fails on 32 px input).
- Objective: the reconstruction distance ``d(G_BA(G_AB(x_A)), x_A)``, "where any form of metric function
  (L1, L2, Huber loss) can be used" (§2.1 "Formulation"); here MSE (the paper's L2, and the code's).
  ``L_CONST_A = d(G_BA(G_AB(x_A)), x_A)``, ``L_GAN_B = -E[log D_B(G_AB(x_A))]`` (the non-saturating G
  loss), ``L_GAB = L_GAN_B + L_CONST_A`` and ``L_DB = -E[log D_B(x_B)] - E[log(1 - D_B(G_AB(x_A)))]`` (§2.3
  "GAN with a Reconstruction Loss"); DiscoGAN couples two of these, ``L_G = L_GAB + L_GBA`` and
  ``L_D = L_DA + L_DB`` (§2.4 "Our Proposed Model: Discovery GAN"); ``loss=nonsaturating`` is the binary
  cross-entropy form. One D phase then one G phase per step.

Sources: the §2.1 sentence is quoted verbatim (as "from the original paper") in huseinzol05's DiscoGAN
notebook; the §2.3-§2.4 equations as transcribed in angrypark's "DiscoGAN 논문 이해하기" (YBIGTA), whose
table of contents, like a second summary's, gives the section titles above. No English full text of
the paper was reachable, so the §2.2 architecture wording and the paper's training settings remain
unverified (spec tag [paper†]); the architecture used is the code's.

Departures from the code, each a documented option or note:

- G ends in tanh, for gan-lab's images in [-1, 1]; the code's sigmoid matches its [0, 1] images (BGR).
- The code's un-normalised first and last layers have no bias; here they have one (``blocks.conv_block``).
- ``fm_weight`` (code: 0.9): the adversarial term becomes ``(1 - fm) * GAN + fm * FM`` with FM the feature
  matching distance of D's hidden layers (:func:`feature_matching`; not in the paper, SKTBrain/DiscoGAN #10).
- ``rate_start`` (code: 0.01): a curriculum ``(1 - rate) * adversarial + rate * reconstruction`` with
  ``rate = rate_start`` before iteration ``rate_switch`` (10000) and ``rate_end`` (0.5) from it
  (:func:`curriculum_rate`; not in the paper, #1). None = the paper's unweighted sum.
- ``d_every`` (code: 3): a D step at iterations ``i % d_every == 0``, a G step at the others (D, G, G, ...);
  1 = a D phase and a G phase every step. ``d_weight`` (code: 0.5) scales each D's cross-entropy.
- ``bottleneck`` (code's ``extra_layers``: 100): a 4x4 -> 1x1 code between encoder and decoder.

Each option is a pure function of the step (iteration ``i = step - 1``, the engine counting from 1).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.base import LossOut, Phase
from gan_lab.models.blocks import conv_block
from gan_lab.models.translation import TwoWayTranslator, cycle_losses


def _levels(image_size: int, width: int) -> list[int]:
    """Channels of the encoder's layers: width, 2 width, ... down to a 4x4 map (64, 128, 256, 512 at 64 px)."""
    downs = image_size.bit_length() - 3
    if image_size < 16 or 2 ** (downs + 2) != image_size:
        raise ConfigError(f"dataset.image_size={image_size}: DiscoGAN's networks need a power of two >= 16 "
                          "(they halve the image down to 4x4)")
    return [width * 2**i for i in range(downs)]


class Generator(nn.Module):
    """Encoder-decoder (B, in_channels, S, S) -> (B, out_channels, S, S) in [-1, 1]."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, image_size: int = 64, width: int = 64,
                 bottleneck: int | None = None):
        super().__init__()
        ch = _levels(image_size, width)
        layers = [conv_block(in_channels, ch[0], norm=None, act="lrelu"),
                  *(conv_block(a, b, act="lrelu") for a, b in zip(ch, ch[1:]))]
        if bottleneck:  # 4x4 -> 1x1 and back, the code's extra_layers
            layers += [conv_block(ch[-1], bottleneck, stride=1, padding=0, act="lrelu"),
                       conv_block(bottleneck, ch[-1], transpose=True, stride=1, padding=0, act="relu")]
        layers += [*(conv_block(b, a, transpose=True, act="relu") for a, b in zip(ch[-2::-1], ch[:0:-1])),
                   conv_block(ch[0], out_channels, transpose=True, norm=None, act="tanh")]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Discriminator(nn.Module):
    """(B, in_channels, S, S) -> (B,) logits; ``return_features=True`` also returns the hidden layers'
    activations (the normalised ones: the code's relu2-relu4 at 64 px) for feature matching."""

    def __init__(self, in_channels: int = 3, image_size: int = 64, width: int = 64):
        super().__init__()
        ch = _levels(image_size, width)
        self.first = conv_block(in_channels, ch[0], norm=None, act="lrelu")
        self.hidden = nn.ModuleList([conv_block(a, b, act="lrelu") for a, b in zip(ch, ch[1:])])
        self.head = nn.Conv2d(ch[-1], 1, 4, 1, 0, bias=False)  # 4x4 -> 1x1

    def forward(self, x: torch.Tensor, return_features: bool = False):
        h = self.first(x)
        features = []
        for layer in self.hidden:
            h = layer(h)
            features.append(h)
        logits = self.head(h).flatten()
        return (logits, features) if return_features else logits


def feature_matching(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of ``mean((mean_batch f_real - mean_batch f_fake)²)``: the code's ``get_fm_loss``
    (its HingeEmbeddingLoss with target 1 is the identity on these non-negative values)."""
    return sum(((r.mean(0) - f.mean(0)) ** 2).mean() for r, f in zip(real, fake))


def curriculum_rate(iteration: int, start: float = 0.01, end: float = 0.5, switch: int = 10000) -> float:
    """The code's reconstruction rate: ``start`` for the iterations (from 0) before ``switch``, then ``end``."""
    return start if iteration < switch else end


class DiscoGAN(TwoWayTranslator):
    """DiscoGAN's task: ``[D, G]`` each step (``d_every=1``), or the code's D step every ``d_every``-th
    iteration and G steps at the others.

    G minimises, per direction (AB shown), ``w_gan * adversarial_AB + w_rec * |G_BA(G_AB(a)) - a|²`` with
    ``adversarial_AB = (1 - fm_weight) * loss.g_loss(D_B(G_AB(a))) + fm_weight * FM_B`` and ``(w_gan, w_rec)
    = (1, 1)`` (the paper's ``L_GAB = L_GAN_B + L_CONST_A``, §2.3) or ``(1 - rate, rate)`` with the
    curriculum; D minimises ``d_weight * (loss.d_loss(D_A(a), D_A(G_BA(b))) + loss.d_loss(D_B(b), D_B(G_AB(a))))``."""

    def __init__(self, generator: Callable[..., nn.Module], discriminator: Callable[..., nn.Module],
                 loss: nn.Module, channels_A: int = 3, channels_B: int = 3, fm_weight: float = 0.0,
                 rate_start: float | None = None, rate_end: float = 0.5, rate_switch: int = 10000,
                 d_every: int = 1, d_weight: float = 1.0):
        super().__init__(generator, discriminator, loss, channels_A, channels_B)
        if not 0.0 <= fm_weight <= 1.0:
            raise ValueError(f"model.fm_weight must be in [0, 1], got {fm_weight}")
        if isinstance(d_every, bool) or not isinstance(d_every, int) or d_every < 1:
            raise ValueError(f"model.d_every must be a positive integer, got {d_every!r}")
        self.fm_weight, self.d_every, self.d_weight = fm_weight, d_every, d_weight
        self.rate_start, self.rate_end, self.rate_switch = rate_start, rate_end, rate_switch

    def phases(self, step: int, n_critic: int) -> list[Phase]:
        def g_loss(batch, carry):  # the curriculum's rate is a function of the step
            return self.g_loss(batch, carry, step=step)

        if self.d_every == 1:
            return [Phase("D", self.d_loss), Phase("G", g_loss, fresh_batch=False)]
        return [Phase("D", self.d_loss) if (step - 1) % self.d_every == 0 else Phase("G", g_loss)]

    def weights(self, step: int | None) -> tuple[float, float]:
        """(adversarial, reconstruction) weights at ``step``: (1, 1), or (1 - rate, rate) with the curriculum
        (``step=None``: after it)."""
        if self.rate_start is None:
            return 1.0, 1.0
        rate = self.rate_end if step is None else curriculum_rate(step - 1, self.rate_start, self.rate_end,
                                                                  self.rate_switch)
        return 1.0 - rate, rate

    def d_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        with torch.no_grad():
            fake_A, fake_B = self.fakes(batch)
        loss, stats = self.discriminate(batch, fake_A, fake_B, self.d_weight)
        return LossOut(loss, stats)

    def adversarial_term(self, domain: str, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """G's adversarial cost against ``D[domain]``, with the feature-matching share when ``fm_weight`` > 0."""
        if not self.fm_weight:
            gan = self.loss.g_loss(self.D[domain](fake))
            return gan, {}
        fake_logits, fake_features = self.D[domain](fake, return_features=True)
        _, real_features = self.D[domain](real, return_features=True)
        gan, fm = self.loss.g_loss(fake_logits), feature_matching(real_features, fake_features)
        return (1 - self.fm_weight) * gan + self.fm_weight * fm, {f"loss/G_fm_{domain}": fm.detach()}

    def g_loss(self, batch: dict[str, torch.Tensor], carry=None, step: int | None = None) -> LossOut:
        real_A, real_B = batch["A"], batch["B"]
        fake_A, fake_B = self.fakes(batch)
        adv_AB, stats = self.adversarial_term("B", real_B, fake_B)
        adv_BA, more = self.adversarial_term("A", real_A, fake_A)
        rec_A, rec_B = cycle_losses(self.G, real_A, real_B, fake_A, fake_B, distance=F.mse_loss)
        w_gan, w_rec = self.weights(step)
        loss = w_gan * (adv_AB + adv_BA) + w_rec * (rec_A + rec_B)
        stats.update(more)
        stats.update({"loss/G": loss.detach(), "loss/G_AB": adv_AB.detach(), "loss/G_BA": adv_BA.detach(),
                      "loss/G_recon_A": rec_A.detach(), "loss/G_recon_B": rec_B.detach()})
        if self.rate_start is not None:
            stats["recon_rate"] = w_rec
        return LossOut(loss, stats)
