"""GAN-INT-CLS of Reed et al. 2016, "Generative Adversarial Text to Image Synthesis" (ICML, arXiv 1605.05396).

§4.1 architecture: G compresses the text embedding phi(t) with a fully connected layer to 128 dimensions and a
LeakyReLU, concatenates it to z ~ N(0, I) (100) and runs a DCGAN generator; D runs a DCGAN trunk down to 4x4,
compresses phi(t) the same way, replicates it spatially and depth-concatenates it, then a 1x1 convolution
with rectification and a 4x4 convolution give the score (:class:`gan_lab.models.text.TextDiscriminator` with
``head_kernel=1``).
§4.2 GAN-CLS, the matching-aware D (Algorithm 1): real image with right text (1), real image with wrong
text (0) and fake with right text (0), the two negatives weighted 1/2 each (``cls_weight``; 0 is the plain
conditional GAN): :class:`gan_lab.models.text.TextToImageTask`.
§4.3 GAN-INT: G also learns from interpolated text embeddings beta t1 + (1 - beta) t2, which have no real
image, so they appear in G's loss only. As the authors' code (reedscot/icml2016 ``main_cls_int.lua``): beta =
0.5, the midpoints of the first and second halves of the batch, G's loss one weighted cross-entropy over the
B real texts (weight 1) and the B/2 midpoints (weight ``interp_weight`` = 1), averaged over the 1.5 B samples,
with fresh noise (the D step's fake is not reused).

Departures (documented, not options): the authors' code adds a bottleneck residual block at 4x4 and at 8x8 in
G and at 4x4 in D (not in the paper), and zeroes convolution biases every step (convolutions followed by batch
norm have none here); neither is built. The text encoder (their char-CNN-RNN, §2.2) is the dataset's
(``dataset.encoder``).
"""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models import dcgan
from gan_lab.models.blocks import dcgan_init, dense
from gan_lab.models.base import LossOut
from gan_lab.models.text import TextToImageTask


class Generator(nn.Module):
    """(z (B, z_dim), text (B, text_dim)) -> images (B, channels, S, S) in [-1, 1]: the text compressed to
    ``text_proj`` with LeakyReLU 0.2, concatenated to z, a DCGAN generator (``width`` channels in its last
    hidden block; the paper's 64 px G, ngf 128, has 1024 at 4x4)."""

    def __init__(self, text_dim: int, z_dim: int = 100, text_proj: int = 128, image_size: int = 64,
                 channels: int = 3, width: int = 128):
        super().__init__()
        self.z_dim = z_dim
        self.project = dense(text_dim, text_proj, act="lrelu")
        self.net = dcgan.Generator(z_dim + text_proj, image_size, channels, width)
        self.project.apply(dcgan_init)

    def forward(self, z: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.project(text)], 1))


class GanIntClsTask(TextToImageTask):
    """GAN-CLS with GAN-INT (``interp``): see the module docstring."""

    def __init__(self, generator: Generator, discriminator: nn.Module, loss: nn.Module, cls_weight: float = 0.5,
                 interp: bool = True, interp_weight: float = 1.0):
        super().__init__(generator, discriminator, loss, cls_weight, reuse_fake=False)
        if isinstance(interp_weight, bool) or not isinstance(interp_weight, (int, float)) or interp_weight < 0:
            raise ConfigError(f"model.interp_weight={interp_weight!r} must be a number >= 0")
        self.interp, self.interp_weight = bool(interp), float(interp_weight)
        self.z_dim = generator.z_dim

    def draw_latents(self, n: int) -> dict[str, torch.Tensor]:
        return {"z": self.draw_rows(torch.randn, n, self.z_dim)}

    def generate(self, G: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return G(inputs["z"], inputs["text"])

    def g_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        if not self.interp:
            return super().g_loss(batch, carry)
        text = batch["text"]
        half = len(text) // 2
        mid = midpoints(text)
        inputs = self.sample_inputs(len(text) + half, text=torch.cat([text, mid]))
        fake = self.generate(self.G, inputs)
        # One cross-entropy over B + B/2 samples with weights 1 and interp_weight (main_cls_int.lua).
        on_text = self.adversarial_g_loss(fake[:len(text)], text)
        on_mid = self.adversarial_g_loss(fake[len(text):], mid) if half else on_text.new_zeros(())
        loss = (len(text) * on_text + self.interp_weight * half * on_mid) / (len(text) + half)
        return LossOut(loss, {"loss/G": loss.detach(), "loss/G_adv": on_text.detach(), "loss/G_int": on_mid.detach()})


def midpoints(text: torch.Tensor) -> torch.Tensor:
    """GAN-INT's interpolated embeddings with beta = 0.5: (t_i + t_{i + B/2}) / 2 for i < B/2 (B // 2 rows)."""
    half = len(text) // 2
    return 0.5 * (text[:half] + text[half:2 * half])
