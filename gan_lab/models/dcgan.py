"""DCGAN networks of Radford et al. 2015, "Unsupervised Representation Learning with
Deep Convolutional Generative Adversarial Networks".

§3 architecture guidelines: strided convolutions in D and fractionally-strided
convolutions in G instead of pooling; BatchNorm everywhere except G's output and
D's input layers; no fully connected hidden layers. G's first layer "could be called
fully connected as it is just a matrix multiplication, but the result is reshaped
into a 4-dimensional tensor"; D's last convolution layer "is flattened and then fed
into a single sigmoid output" (§3): both are linear maps here, which is also the
fast way to compute them (one matrix multiply instead of a 1x1-input convolution).
ReLU in G with a Tanh output, LeakyReLU(0.2) in D. §4: weights from N(0, 0.02).

Each block doubles (G) or halves (D) the resolution with 4x4 kernels, as in the
PyTorch DCGAN example; log2(image_size) - 2 blocks lie between 4x4 and the image.
``width`` is the channel count of G's last hidden block and D's first block, and
doubles per block towards 4x4 (the paper's 64 px G, 1024 channels at 4x4, is width=128).

The same networks serve the Wasserstein family as generator and critic: WGAN
(Arjovsky et al. 2017, §4) trains them as they are; a gradient-penalised critic
takes ``norm="layer"`` or ``"none"``, because the penalty is per input and batch norm
mixes the samples of a batch (Gulrajani et al. 2017, §4).

SAGAN (Zhang et al. 2019, "Self-Attention GANs", §3) adds a self-attention block
(``blocks.SelfAttention``) after the block of one resolution in G and D: ``attention_at``.
"""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.blocks import NORMS, SelfAttention, conv_block, dcgan_init


def _widths(image_size: int, width: int) -> list[int]:
    """Channels of the hidden blocks, from full resolution down to 4x4."""
    if image_size not in (32, 64):
        raise ConfigError(f"dataset.image_size={image_size}: DCGAN generates 32 or 64 pixel images")
    blocks = image_size.bit_length() - 3  # log2(image_size) - 2
    return [width * 2**i for i in range(blocks)]


def _hidden(blocks: list[list[nn.Module]], sizes: list[int], channels: list[int], attention_at: int | None,
            key: str) -> list[nn.Module]:
    """The layers of the hidden blocks (block i outputs ``channels[i]`` maps of ``sizes[i]`` px), with a
    self-attention block after the one of ``attention_at`` px (SAGAN), if given."""
    if attention_at is not None and attention_at not in sizes:
        raise ConfigError(f"{key}={attention_at}: self-attention follows a hidden block, whose feature maps "
                          f"have {', '.join(map(str, sorted(sizes)))} px; choose one of those or null")
    layers = []
    for block, size, ch in zip(blocks, sizes, channels):
        layers += [*block, *([SelfAttention(ch)] if size == attention_at else [])]
    return layers


class Generator(nn.Module):
    """z (B, z_dim) -> images (B, channels, image_size, image_size) in [-1, 1].

    ``attention_at``: the resolution (4 to image_size / 2) of the hidden block followed by self-attention."""

    def __init__(self, z_dim: int = 100, image_size: int = 64, channels: int = 3, width: int = 64,
                 attention_at: int | None = None):
        super().__init__()
        self.z_dim = z_dim
        ch = _widths(image_size, width)[::-1]
        stem = [
            nn.Linear(z_dim, ch[0] * 16, bias=False),  # project z to 4x4 ...
            nn.Unflatten(1, (ch[0], 4, 4)),
            nn.BatchNorm2d(ch[0]),
            nn.ReLU(inplace=True),
        ]
        blocks = [stem, *([conv_block(a, b, transpose=True, act="relu")] for a, b in zip(ch, ch[1:]))]
        sizes = [4 * 2**i for i in range(len(ch))]
        self.net = nn.Sequential(
            *_hidden(blocks, sizes, ch, attention_at, "model.generator.attention_at"),
            conv_block(ch[-1], channels, transpose=True, norm=None, act="tanh"),
        )
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """Images (B, channels, image_size, image_size) -> one logit per image (B,).

    ``norm`` ("batch", "layer" or "none") normalizes the hidden blocks. ``outputs`` > 1 gives
    (B, outputs) logits instead, for discriminators that also classify. ``attention_at``: the
    resolution (image_size / 2 to 4) of the hidden block followed by self-attention."""

    def __init__(self, image_size: int = 64, channels: int = 3, width: int = 64, norm: str = "batch",
                 outputs: int = 1, attention_at: int | None = None):
        super().__init__()
        if norm not in NORMS:
            raise ConfigError(f"model.discriminator.norm={norm}: choose one of {', '.join(NORMS)}")
        ch = _widths(image_size, width)
        blocks = [[conv_block(channels, ch[0], norm=None, act="lrelu")],
                  *([conv_block(a, b, norm=norm, act="lrelu")] for a, b in zip(ch, ch[1:]))]
        sizes = [image_size // 2**(i + 1) for i in range(len(ch))]
        self.body = nn.Sequential(
            *_hidden(blocks, sizes, ch, attention_at, "model.discriminator.attention_at"),
            nn.Flatten(),
        )
        self.head = nn.Linear(ch[-1] * 16, outputs)  # 4x4 features -> one logit (or one per class)
        self.apply(dcgan_init)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened 4x4 feature maps of the last block (B, 16 * channels)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.body(x))
        return logits.view(-1) if logits.shape[1] == 1 else logits
