"""Progressive GAN of Karras et al. 2018, "Progressive Growing of GANs for Improved Quality,
Stability, and Variation", following the authors' code (tkarras/progressive_growing_of_gans,
``networks.py`` G_paper/D_paper, ``train.py``).

§3 (Fig. 2): training starts at 4x4 and doubles the resolution of G and D together; each new
block fades in, its toRGB output (G) or fromRGB path (D) blended with the up/downsampled path
of the previous resolution with alpha rising linearly from 0 to 1. Real images are faded the
same way (``process_reals``). As in the authors' code both networks take and give images at the
full resolution throughout: G computes the blocks the current phase needs and nearest-upsamples,
D average-pools its input, so sampling, evaluation and the gradient penalty see one image size.
The phase (``level``, 0 = 4x4, and ``alpha``) is a pure function of the step (``train.py``
TrainingSchedule), set on G, D and the EMA copy of G before every step and saved with their weights.

§4.1 equalized learning rate: weights N(0, 1) scaled at runtime by He's constant. §4.2 pixelwise
feature normalization after every convolution of G (and of the latent). §3 minibatch standard
deviation before D's 4x4 block. Appendix A: leaky ReLU 0.2, linear toRGB output, nearest
upsampling, average-pool downsampling; channels ``min(8192 / 2^stage, width)`` (the paper's
``fmap_max`` = 512, 512 channels up to 64x64 and halving above).
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.base import LossOut
from gan_lab.models.blocks import MinibatchStddev, activation, check_stddev_group
from gan_lab.models.noise import NoiseToImage

log = logging.getLogger(__name__)

HE_GAIN = math.sqrt(2.0)  # He et al. 2015 for (leaky) ReLU layers


class EqualizedLinear(nn.Module):
    """A linear layer with equalized learning rate (§4.1): weights N(0, 1), multiplied at runtime by
    ``gain / sqrt(fan_in)``, so Adam's scale-invariant steps change every layer at the same rate."""

    def __init__(self, in_features: int, out_features: int, gain: float = HE_GAIN, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualizedConv2d(nn.Module):
    """A stride-1 "same" convolution with equalized learning rate (§4.1), fan-in = in_ch * k * k."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, gain: float = HE_GAIN):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.scale = gain / math.sqrt(in_ch * kernel * kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)


class PixelNorm(nn.Module):
    """Each pixel's feature vector scaled to unit mean square over channels (§4.2, eq. 1)."""

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(1, keepdim=True) + self.eps)


def phase_at(step: int, levels: int, stabilize: int, fade: int) -> tuple[int, float]:
    """(level, alpha) of generator step ``step`` (1-based): ``stabilize`` steps at each resolution,
    then ``fade`` steps in which the next one fades in, alpha = 0, 1/fade, ..., from the steps done
    before this one (``train.py`` TrainingSchedule, in steps instead of images); after the last
    level (``levels`` = log2(image_size) - 2) is faded in, it trains on. 0 and 0: full size at once."""
    period = stabilize + fade
    done = step - 1
    if period == 0 or done // period >= levels:
        return levels, 1.0
    level, within = divmod(done, period)
    if within < stabilize:
        return level, 1.0
    return level + 1, (within - stabilize) / fade


def fade_reals(x: torch.Tensor, level: int, alpha: float) -> torch.Tensor:
    """Real images as D sees them at a phase (``train.py`` process_reals): box-downscaled to the
    level's resolution, blended with their down-then-upscaled copy while the level fades in
    (weight 1 - alpha), then nearest-upscaled back to the full size."""
    factor = x.shape[-1] // (4 << level)
    if factor > 1:
        x = F.avg_pool2d(x, factor)
    if alpha < 1:
        x = torch.lerp(F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest"), x, alpha)
    return F.interpolate(x, scale_factor=factor, mode="nearest") if factor > 1 else x


class Growing(nn.Module):
    """The phase of a progressively grown network: ``level`` (resolution 4 * 2^level) and ``alpha``
    (fade-in of that level), plain Python numbers, so a forward reads them without a device sync
    or a graph break under torch.compile; checkpoints hold them as the module's extra state.
    A new network is at full size."""

    def __init__(self, image_size: int, width: int):
        super().__init__()
        if image_size < 4 or image_size & (image_size - 1):
            raise ConfigError(f"dataset.image_size={image_size}: Progressive GAN grows from 4x4 by doubling, "
                              "so the image size must be a power of two (at least 4)")
        if width < 1:
            raise ConfigError(f"model.generator.width / model.discriminator.width must be positive, got {width}")
        self.image_size, self.width = image_size, width
        self.levels = image_size.bit_length() - 3  # log2(image_size) - 2 doublings after 4x4
        self.level, self.alpha = self.levels, 1.0

    def channels(self, stage: int) -> int:
        """Feature maps at ``stage`` = log2(resolution) - 1 (networks.py nf: fmap_base 8192, capped)."""
        return min(8192 >> stage, self.width)

    def set_phase(self, level: int, alpha: float) -> None:
        if not (0 <= level <= self.levels and 0.0 <= alpha <= 1.0):
            raise ValueError(f"phase (level {level}, alpha {alpha}) outside 0..{self.levels}, [0, 1]")
        self.level, self.alpha = int(level), float(alpha)

    def phase(self) -> tuple[int, float]:
        return self.level, self.alpha

    def get_extra_state(self) -> dict:
        return {"level": self.level, "alpha": self.alpha}

    def set_extra_state(self, state: dict) -> None:
        self.set_phase(state["level"], state["alpha"])


def _conv(in_ch: int, out_ch: int, kernel: int = 3, norm: bool = False) -> list[nn.Module]:
    """Equalized convolution, leaky ReLU 0.2 and, in G, pixel norm."""
    return [EqualizedConv2d(in_ch, out_ch, kernel), *activation("lrelu"), *([PixelNorm()] if norm else [])]


class _Project(nn.Module):
    """z -> (B, C, 4, 4): G's first, dense layer with one bias per channel; gain sqrt(2)/4 as in
    networks.py (there "to match the original Theano implementation")."""

    def __init__(self, z_dim: int, ch: int):
        super().__init__()
        self.dense = EqualizedLinear(z_dim, ch * 16, gain=HE_GAIN / 4, bias=False)
        self.bias = nn.Parameter(torch.zeros(ch))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.dense(z).unflatten(1, (-1, 4, 4)) + self.bias.view(1, -1, 1, 1)


class Generator(Growing):
    """z (B, z_dim) -> images (B, channels, image_size, image_size), linear output (about [-1, 1]).

    ``blocks[0]`` maps the pixel-normalized latent to 4x4 features; ``blocks[l]`` doubles them
    to 4 * 2^l; ``torgb[l]`` is the 1x1 output layer of level l."""

    def __init__(self, z_dim: int = 512, image_size: int = 32, channels: int = 3, width: int = 512):
        super().__init__(image_size, width)
        self.z_dim = z_dim
        ch = [self.channels(level + 1) for level in range(self.levels + 1)]
        self.blocks = nn.ModuleList([nn.Sequential(
            PixelNorm(), _Project(z_dim, ch[0]), *activation("lrelu"), PixelNorm(), *_conv(ch[0], ch[0], norm=True))])
        self.blocks.extend(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                         *_conv(a, b, norm=True), *_conv(b, b, norm=True))
                           for a, b in zip(ch, ch[1:]))
        self.torgb = nn.ModuleList(EqualizedConv2d(c, channels, 1, gain=1.0) for c in ch)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        level, alpha = self.level, self.alpha
        h = self.blocks[0](z)
        for block in self.blocks[1:level + 1]:
            prev, h = h, block(h)
        img = self.torgb[level](h)
        if alpha < 1 and level > 0:  # the new block's output faded in over the previous one, upsampled
            img = torch.lerp(F.interpolate(self.torgb[level - 1](prev), scale_factor=2, mode="nearest"), img, alpha)
        factor = self.image_size >> (level + 2)
        return F.interpolate(img, scale_factor=factor, mode="nearest") if factor > 1 else img


class Discriminator(Growing):
    """Images (B, channels, image_size, image_size) -> one score per image (B,).

    ``fromrgb[l]`` reads the input average-pooled to 4 * 2^l; ``blocks[l]`` (l >= 1) halves the
    features to 4 * 2^(l-1); ``blocks[0]`` is the 4x4 block: minibatch stddev (groups of
    ``mbstd_group``), a 3x3 and a 4x4 ("dense") layer, the linear score."""

    def __init__(self, image_size: int = 32, channels: int = 3, width: int = 512, mbstd_group: int = 4,
                 batch_size: int | None = None):
        super().__init__(image_size, width)
        check_stddev_group(mbstd_group, batch_size, "model.discriminator.mbstd_group")
        ch = [self.channels(level + 1) for level in range(self.levels + 1)]
        self.fromrgb = nn.ModuleList(nn.Sequential(*_conv(channels, c, kernel=1)) for c in ch)
        self.blocks = nn.ModuleList([nn.Sequential(
            MinibatchStddev(mbstd_group), *_conv(ch[0] + 1, ch[0]), nn.Flatten(),
            EqualizedLinear(ch[0] * 16, self.channels(0)), *activation("lrelu"),
            EqualizedLinear(self.channels(0), 1, gain=1.0))])
        self.blocks.extend(nn.Sequential(*_conv(b, b), *_conv(b, a), nn.AvgPool2d(2)) for a, b in zip(ch, ch[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        level, alpha = self.level, self.alpha
        factor = self.image_size >> (level + 2)
        if factor > 1:
            x = F.avg_pool2d(x, factor)
        h = self.fromrgb[level](x)
        for l in range(level, 0, -1):
            h = self.blocks[l](h)
            if l == level and alpha < 1:  # the new fromRGB path faded in over the previous one, downsampled
                h = torch.lerp(self.fromrgb[l - 1](F.avg_pool2d(x, 2)), h, alpha)
        return self.blocks[0](h).view(-1)


class ProgressiveGAN(NoiseToImage):
    """The noise-to-image task with a growing G and D: :meth:`begin_step` sets their phase from the
    step (``stabilize_steps`` per resolution, then ``fade_steps`` of fade-in to the next) and
    D's real images are faded like its input (:func:`fade_reals`)."""

    data_kinds = ("image",)

    def __init__(self, generator: Growing, discriminator: Growing, loss: nn.Module,
                 stabilize_steps: int = 600, fade_steps: int = 600, reuse_fake: bool = True):
        super().__init__(generator, discriminator, loss, reuse_fake)
        for key, value in (("stabilize_steps", stabilize_steps), ("fade_steps", fade_steps)):
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"model.{key} must be a whole number of steps >= 0, got {value!r}")
        if generator.levels != discriminator.levels:
            raise ConfigError(f"model.generator.image_size ({generator.image_size}) and "
                              f"model.discriminator.image_size ({discriminator.image_size}) differ")
        self.stabilize_steps, self.fade_steps = stabilize_steps, fade_steps

    def phase_at(self, step: int) -> tuple[int, float]:
        return phase_at(step, self.G.levels, self.stabilize_steps, self.fade_steps)

    def begin_step(self, step: int) -> bool:
        """Sets the phase of ``step`` on G, D and the EMA copy of G; True when the step starts a new
        stage, whose Adam moments the engine resets (the official code's ``reset_opt_for_new_lod``).
        A pure function of the step."""
        level, alpha = self.phase_at(step)
        new_stage = step == 1 or self._stage(step) != self._stage(step - 1)
        if new_stage:
            size = 4 << level
            log.info("step %d: %s %dx%d", step, "fading in" if alpha < 1 else "training at", size, size)
        for net in (self.G, self.D, self.G_ema):
            if net is not None:
                net.set_phase(level, alpha)
        return new_stage and step > 1

    def _stage(self, step: int) -> tuple[int, bool]:
        """(level, fading) of ``step``: the optimizers restart when it changes."""
        level, alpha = self.phase_at(step)
        return level, alpha < 1

    def d_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        level, alpha = self.D.phase()
        out = super().d_loss({**batch, "real": fade_reals(batch["real"], level, alpha)}, carry)
        out.stats.update({"progan/resolution": float(4 << level), "progan/alpha": alpha})
        return out
