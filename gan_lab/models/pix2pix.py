"""pix2pix of Isola et al. 2017, "Image-to-Image Translation with Conditional
Adversarial Networks": a U-Net generator (§3.2.1, §6.1.1), a 70x70 PatchGAN
discriminator (§3.2.2, §6.1.2) and the cGAN + lambda * L1 objective (§3.1, eq. 4).

The U-Net halves the resolution log2(image_size) times down to a 1x1 bottleneck
with 4x4 stride-2 convolutions, C64-C128-C256-C512-C512-... (BatchNorm except on the
first layer, LeakyReLU 0.2), then mirrors it with transposed convolutions (ReLU),
each decoder layer's output concatenated with the encoder layer of the same size.
The generator's only noise is dropout in its first three decoder layers, kept at
test time (§3.1, §3.3). Weights are drawn from N(0, 0.02) (§6.2).
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.base import EvalSet, GANTask, Grid, LossOut, square_columns
from gan_lab.models.blocks import conv_block, dcgan_init

_DROPOUT_LAYERS = 3  # decoder "CD" layers of §6.1.1: CD512-CD1024-CD1024-C1024-...


def _levels(width: int, count: int) -> list[int]:
    """Channels per resolution level: width, 2 width, 4 width, then 8 width (512 for width 64)."""
    return [width * min(2**i, 8) for i in range(count)]


def _up(in_ch: int, out_ch: int, **block) -> nn.Sequential:
    """A decoder layer: ReLU of the (concatenated) input, then a transposed convolution block."""
    return nn.Sequential(nn.ReLU(inplace=True), *conv_block(in_ch, out_ch, transpose=True, **block))


class Generator(nn.Module):
    """U-Net: input images (B, in_channels, S, S) -> outputs (B, out_channels, S, S) in [-1, 1]."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, image_size: int = 256, width: int = 64,
                 dropout: float = 0.5, norm: str = "batch"):
        # norm: "batch" (the paper's), "instance" / "instance_affine" (per-sample statistics, e.g. DualGAN)
        super().__init__()
        downs = image_size.bit_length() - 1
        if image_size < 16 or 2**downs != image_size:
            raise ConfigError(f"dataset.image_size={image_size}: the pix2pix U-Net needs a power of two >= 16 "
                              "(it halves the image down to a 1x1 bottleneck)")
        ch = _levels(width, downs)
        self.down = nn.ModuleList([
            conv_block(in_channels, ch[0], norm=False, act="lrelu"),
            *(conv_block(a, b, norm=norm, act="lrelu") for a, b in zip(ch[:-2], ch[1:-1])),
            # No BatchNorm on the 1x1 bottleneck: with batch size 1 (the paper's) it would zero it.
            conv_block(ch[-2], ch[-1], norm=False),
        ])
        ups = []
        for k, level in enumerate(range(downs - 1, 0, -1)):  # k-th decoder layer below the bottleneck
            in_ch = ch[level] if k == 0 else 2 * ch[level]  # 2x: the skip connection's channels
            drop = dropout if k < _DROPOUT_LAYERS else 0.0
            ups.append(_up(in_ch, ch[level - 1], norm=norm, dropout=drop))
        ups.append(_up(2 * ch[0], out_channels, norm=False, act="tanh"))
        self.up = nn.ModuleList(ups)
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Skips carry the encoder layers' activated outputs (Ck = Conv-BN-LeakyReLU), as the
        # reference code's in-place activations do; each decoder layer then applies its ReLU.
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
        skips.pop()  # the bottleneck itself
        for up in self.up[:-1]:
            x = torch.cat([up(x), skips.pop()], 1)
        return self.up[-1](x)


class Discriminator(nn.Module):
    """PatchGAN: (B, in_channels, S, S) -> a grid of logits, one per overlapping patch.

    ``n_layers`` stride-2 layers (C64-C128-C256 for 3), a stride-1 C512 and a 1-channel
    convolution; with n_layers=3 each logit sees a 70x70 patch. ``in_channels`` counts
    input and output channels together (D judges their concatenation). ``image_size``,
    when given, is checked to leave at least one patch."""

    def __init__(self, in_channels: int = 6, width: int = 64, n_layers: int = 3, image_size: int | None = None,
                 norm: str = "batch"):
        # norm: "batch" (the paper's) or "instance" (CycleGAN's PatchGAN, Zhu et al. 2017 §7.2)
        super().__init__()
        if image_size is not None and _patch_grid(image_size, n_layers) < 1:
            raise ConfigError(f"dataset.image_size={image_size}: a PatchGAN with n_layers={n_layers} "
                              f"needs images of at least {3 * 2**n_layers} pixels")
        ch = _levels(width, n_layers + 1)
        self.net = nn.Sequential(
            conv_block(in_channels, ch[0], norm=False, act="lrelu"),
            *(conv_block(a, b, norm=norm, act="lrelu") for a, b in zip(ch[:-2], ch[1:-1])),
            conv_block(ch[-2], ch[-1], stride=1, norm=norm, act="lrelu"),
            conv_block(ch[-1], 1, stride=1, norm=False),
        )
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _patch_grid(image_size: int, n_layers: int) -> int:
    """Side of the logit grid: each stride-2 layer halves, each stride-1 4x4 layer removes one."""
    for _ in range(n_layers):
        image_size //= 2
    return image_size - 2


class Pix2PixTask(GANTask):
    """Conditional GAN on paired images plus L1 (§3.1): D judges (input, target) against
    (input, G(input)); G minimises the adversarial loss + ``lambda_l1`` * L1(G(input), target).

    As in the reference code, the D step hands its generator output to the G step (G is
    unchanged in between): one G forward per step."""

    data_kinds = ("paired",)
    fixed_examples = ("input", "target")

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: nn.Module, lambda_l1: float = 100.0):
        super().__init__(generator, discriminator, loss)
        self.lambda_l1 = lambda_l1  # the paper's experiments use lambda = 100 (§4)

    def d_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        x, target = batch["input"], batch["target"]
        fake = self.G(x)
        real_logits = self.D(torch.cat([x, target], 1))
        fake_logits = self.D(torch.cat([x, fake.detach()], 1))  # no gradient reaches G
        # §3.3: "we divide the objective by 2 while optimizing D", slowing D relative to G.
        loss = 0.5 * self.loss.d_loss(real_logits, fake_logits)
        return LossOut(loss, self.loss.d_stats(loss, real_logits, fake_logits), fake if fake.requires_grad else None)

    def g_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        x, target = batch["input"], batch["target"]
        fake = carry if carry is not None else self.G(x)
        adv = self.loss.g_loss(self.D(torch.cat([x, fake], 1)))
        l1 = F.l1_loss(fake, target)
        loss = adv + self.lambda_l1 * l1
        return LossOut(loss, {"loss/G": loss.detach(), "loss/G_adv": adv.detach(), "loss/G_L1": l1.detach()})

    def sample(self, n: int, G: nn.Module, **given) -> dict[str, torch.Tensor]:
        """``{"samples": G(input)}`` for ``input=`` (B, C, H, W) in [-1, 1]; ``n`` is len(input).
        Dropout stays on, as at test time in the paper (§3.3); BatchNorm uses its running statistics
        (the paper uses the test batch's), so an output does not depend on the rest of the batch."""
        if "input" not in given:
            raise ValueError("pix2pix translates images: sample(n, G, input=images)")
        for module in G.modules():
            if isinstance(module, nn.Dropout):
                module.train()
        return {"samples": G(given["input"])}

    def eval_sets(self, data, n: int) -> list[EvalSet]:
        """Outputs of the first ``n`` inputs against their targets."""
        pairs = data.examples(n)
        return [EvalSet("", pairs["target"], given={"input": pairs["input"]}, paired=True)]

    def visuals(self, fixed: dict[str, torch.Tensor], G: nn.Module) -> dict[str, Grid]:
        """Triplets (input, output, target), side by side, in a square grid of triplets."""
        x, target = fixed["input"], fixed["target"]
        out = self.sample(len(x), G, input=x)["samples"]
        return {"fixed": Grid(triplets(x, out, target), 3 * square_columns(len(x)))}


def triplets(*columns: torch.Tensor) -> torch.Tensor:
    """Interleave equal-length image batches row by row (a, b, c, a, b, c, ...), matching channels and
    sizes (a smaller column, such as super-resolution's LR input, is enlarged with square pixels)."""
    channels = max(c.shape[1] for c in columns)
    size = max(c.shape[-2:] for c in columns)
    return torch.stack([_match_size(_match_channels(c, channels), size) for c in columns], 1).flatten(0, 1)


def _match_size(x: torch.Tensor, size) -> torch.Tensor:
    return x if x.shape[-2:] == size else F.interpolate(x, size=tuple(size), mode="nearest")


def _match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Show an input beside outputs with another channel count (e.g. gray -> color)."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1)
    if channels == 1:
        return x.mean(1, keepdim=True)
    return F.pad(x[:, :channels], (0, 0, 0, 0, 0, max(0, channels - x.shape[1])))
