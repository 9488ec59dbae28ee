"""SRResNet and SRGAN of Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution Using a
Generative Adversarial Network" (CVPR 2017, arXiv 1609.04802): §2.1 and Fig. 4 (networks), §2.2
(perceptual loss: content + 1e-3 adversarial), §3.2 (training details), §3.4-3.5 (MSE vs VGG content).

Generator (SRResNet; Fig. 4 as recalled in the spec, not verified, and leftthomas/SRGAN's code): a 9x9
convolution to 64 channels + PReLU; B residual blocks (conv3x3 64, BN, PReLU, conv3x3 64, BN, plus the
block's input; the paper's B = 16); conv3x3 + BN plus the long skip
from the first layer; log2(factor) sub-pixel upsampling blocks (conv3x3 64 -> 256, PixelShuffle(2) of Shi
et al. 2016, PReLU); a 9x9 convolution to the image channels. The LR input is mapped from the data's
[-1, 1] to [0, 1] inside G ("We scaled the range of the LR input images to [0, 1] and for the HR images
to [-1, 1]", §3.2, quoted in the spec). The paper's last convolution has no output nonlinearity (Fig. 4;
PyTorch-GAN PR #162 makes the same remark); here a tanh bounds the output to the HR range by default
(``tanh: false`` gives the paper's linear output, clamped to [-1, 1] only when sampling). PReLU has one
slope per channel (the paper does not say; unverified). Weights keep PyTorch's default initialisation (the
paper gives none; leftthomas/SRGAN does the same; tensorlayer/srgan draws N(0, 0.02)).

Discriminator (§2.1, as a secondary page gives it, not checked against the PDF: "eight convolutional
layers with of 3x3 filter kernels, increasing by a factor of 2 from 64 to 512 kernels. Strided convolutions
are used to reduce the image resolution each time the number of features is doubled. The resulting 512
feature maps are followed by two dense layers and a leakyReLU applied between and a final sigmoid"):
conv3x3 64 + LeakyReLU 0.2; seven conv3x3-BN-LeakyReLU blocks with 64 (stride 2), 128, 128 (s2), 256, 256
(s2), 512, 512 (s2) channels, so the side shrinks 16x; Dense 1024 + LeakyReLU; Dense 1 (a logit: the
sigmoid lives in the loss). The per-layer strides and widths are Fig. 4's as recalled in the spec (not
verified) and tensorlayer/srgan's ``SRGAN_d2`` (read in its code). The dense head ties D to the HR size;
``global_pool: true`` averages the last feature map first, as leftthomas/SRGAN's AdaptiveAvgPool + 1x1
convolutions (any input size).

Tasks: :class:`SRResNet` trains G alone on the content loss (MSE; one player). :class:`SRGAN` adds D:
G minimises content + 1e-3 * -log D(G(LR)) (§2.2, eq. 3; non-saturating), D the cross-entropy; the
paper initialises G from a trained SRResNet ("We employed the trained MSE-based SRResNet network as
initialization for the generator", §3.2), here either inside the run (``pretrain_steps``: the first
steps are content-only G steps, a pure function of the step) or from another run (``init``).
Content losses: ``gan_lab.losses.perceptual`` (mse, vgg22, vgg54).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gan_lab.data.superres import bicubic_upscale
from gan_lab.engine import checkpoint
from gan_lab.errors import CheckpointError, ConfigError
from gan_lab.losses.perceptual import ContentLoss
from gan_lab.models.base import EvalSet, GANTask, Grid, LossOut, Phase, square_columns
from gan_lab.models.blocks import conv_block, dense
from gan_lab.models.pix2pix import triplets


def _conv3(in_ch: int, out_ch: int, *, stride: int = 1, norm: str | None = "batch", act: str | None = None):
    """A 3x3 convolution (padding 1), BatchNorm, activation: the paper's "k3n64s1" layers."""
    return conv_block(in_ch, out_ch, kernel=3, stride=stride, padding=1, norm=norm, act=act)


class ResidualBlock(nn.Module):
    """``x + BN(conv(PReLU(BN(conv(x)))))`` (Fig. 4, after Gross & Wilber's ResNet variant); size kept."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(*_conv3(channels, channels), nn.PReLU(channels), *_conv3(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def upsample_block(channels: int) -> nn.Sequential:
    """conv3x3 to 4 * channels, PixelShuffle(2) (channel 4c + 2i + j -> pixel (2h + i, 2w + j) of channel c),
    PReLU: twice the side, the same channels."""
    return nn.Sequential(nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(channels))


def check_factor(factor) -> int:
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2 or factor & (factor - 1):
        raise ConfigError(f"dataset.factor must be a power of two >= 2 (one sub-pixel block per doubling), "
                          f"got {factor!r}")
    return factor


class Generator(nn.Module):
    """SRResNet: LR images (N, C, h, w) in [-1, 1] -> (N, C, factor h, factor w); any input size."""

    def __init__(self, channels: int = 3, factor: int = 4, width: int = 64, blocks: int = 16, tanh: bool = True):
        super().__init__()
        self.factor = check_factor(factor)
        if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
            raise ConfigError(f"model.generator.blocks must be a positive integer, got {blocks!r}")
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, padding=4), nn.PReLU(width))
        self.body = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)), *_conv3(width, width))
        self.up = nn.Sequential(*(upsample_block(width) for _ in range(factor.bit_length() - 1)))
        self.tail = nn.Conv2d(width, channels, 9, padding=4)
        self.tanh = tanh

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        h = self.head(lr * 0.5 + 0.5)  # §3.2: LR inputs in [0, 1]
        out = self.tail(self.up(h + self.body(h)))
        return torch.tanh(out) if self.tanh else out


class Discriminator(nn.Module):
    """HR images (N, C, S, S) -> one logit each (N, 1); S a multiple of 16 unless ``global_pool``."""

    STAGES = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2))  # Fig. 4, after the first conv

    def __init__(self, channels: int = 3, image_size: int = 96, width: int = 64, dense_units: int = 1024,
                 global_pool: bool = False):
        super().__init__()
        if not global_pool and image_size % 16:
            raise ConfigError(f"dataset.image_size={image_size}: the SRGAN discriminator halves the side four "
                              "times before its dense layer; use a multiple of 16 or "
                              "model.discriminator.global_pool=true")
        scale = width / 64
        layers, ch = [_conv3(channels, width, norm=None, act="lrelu")], width
        for out, stride in self.STAGES:
            out = int(out * scale)
            layers.append(_conv3(ch, out, stride=stride, act="lrelu"))
            ch = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1) if global_pool else nn.Identity()
        side = 1 if global_pool else image_size // 16
        self.head = nn.Sequential(nn.Flatten(), dense(ch * side * side, dense_units, act="lrelu"),
                                  dense(dense_units, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


class SRResNet(GANTask):
    """The MSE-based SRResNet (§3.5): G alone, minimising the content loss on (LR, HR) pairs; ``init``
    starts G from another SRResNet/SRGAN run or checkpoint (weights only: a new run, fresh optimizer).

    ``sample(n, G, input=LR)`` super-resolves; with ``baseline="bicubic"`` it returns bicubic upsampling
    instead, so evaluation reports the bicubic baseline of the same inputs beside G's (set ``bicubic ``)."""

    data_kinds = ("paired",)
    fixed_examples = ("input", "target")
    any_input_size = True

    def __init__(self, generator: nn.Module, factor: int = 4, content: str = "mse", vgg_weights: str | None = None,
                 vgg_scale: float = 1 / 12.75, init: str | None = None, loss: nn.Module | None = None):
        # ``loss``: the adversarial loss the engine injects; SRResNet has no adversary and ignores it
        super().__init__(generator, None)
        self.init = init
        self.factor = check_factor(factor)
        if getattr(generator, "factor", factor) != factor:
            raise ConfigError(f"model.generator.factor={generator.factor} differs from the data's "
                              f"dataset.factor={factor}")
        self.content = ContentLoss(content, vgg_weights, vgg_scale)

    def players(self) -> dict[str, nn.Module]:
        return {"G": self.G}

    def use_data(self, data) -> None:
        """Training only: read the VGG of a VGG content loss (eval and sample need none) and start G from
        ``init`` (eval and sample restore the run's own weights)."""
        self.content.load()
        if self.init:
            self.G.load_state_dict(init_weights(self.init, self.G))

    def phases(self, step: int, n_critic: int) -> list[Phase]:
        return [Phase("G", self.content_loss)]

    def content_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        loss = self.content(self.G(batch["input"]), batch["target"])
        return LossOut(loss, {"loss/G": loss.detach(), "loss/G_content": loss.detach()})

    def sample(self, n: int, G: nn.Module, **given) -> dict[str, torch.Tensor]:
        if "input" not in given:
            raise ValueError("super-resolution upsamples images: sample(n, G, input=low_resolution_images)")
        x = given["input"]
        if given.get("baseline") == "bicubic":
            return {"samples": bicubic_upscale(x, self.factor)}
        return {"samples": G(x).clamp(-1, 1)}

    def eval_sets(self, data, n: int) -> list[EvalSet]:
        """G's outputs and bicubic upsampling of the first ``n`` LR inputs against their HR images, with
        ``factor`` border pixels left out (as the SR literature's PSNR/SSIM)."""
        pairs = data.examples(n)
        given = {"input": pairs["input"]}
        return [EvalSet("", pairs["target"], given=given, paired=True, border=self.factor),
                EvalSet("bicubic ", pairs["target"], given={**given, "baseline": "bicubic"}, paired=True,
                        border=self.factor)]

    def visuals(self, fixed: dict[str, torch.Tensor], G: nn.Module) -> dict[str, Grid]:
        """Rows of (LR, bicubic, G(LR), HR), the LR shown with square pixels."""
        x, target = fixed["input"], fixed["target"]
        columns = (x, self.sample(len(x), G, input=x, baseline="bicubic")["samples"],
                   self.sample(len(x), G, input=x)["samples"], target)
        return {"fixed": Grid(triplets(*columns), len(columns) * square_columns(len(x)))}


class SRGAN(SRResNet):
    """SRGAN (§2.2): G minimises content + ``adversarial_weight`` * -log D(G(LR)) (the paper's 1e-3), D
    the cross-entropy of HR (real) against G(LR). Steps 1..``pretrain_steps`` train G on the content loss
    alone (SRResNet); ``init`` starts G from a trained SRResNet (or SRGAN) run or checkpoint."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: nn.Module, factor: int = 4,
                 content: str = "mse", vgg_weights: str | None = None, vgg_scale: float = 1 / 12.75,
                 adversarial_weight: float = 1e-3, pretrain_steps: int = 0, init: str | None = None):
        super().__init__(generator, factor, content, vgg_weights, vgg_scale, init)
        self.D, self.loss = discriminator, loss
        if isinstance(pretrain_steps, bool) or not isinstance(pretrain_steps, int) or pretrain_steps < 0:
            raise ConfigError(f"model.pretrain_steps must be an integer >= 0, got {pretrain_steps!r}")
        if isinstance(adversarial_weight, bool) or not isinstance(adversarial_weight, (int, float)) \
                or adversarial_weight < 0:
            raise ConfigError(f"model.adversarial_weight must be a number >= 0, got {adversarial_weight!r}")
        self.adversarial_weight, self.pretrain_steps = float(adversarial_weight), pretrain_steps

    def players(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def phases(self, step: int, n_critic: int) -> list[Phase]:
        if step <= self.pretrain_steps:  # SRResNet initialisation inside the run
            return super().phases(step, n_critic)
        return [Phase("D", self.d_loss, repeats=n_critic, hand_off="G"), Phase("G", self.g_loss, fresh_batch=False)]

    def d_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        fake = self.G(batch["input"])
        real_logits, fake_logits = self.D(batch["target"]), self.D(fake.detach())
        loss = self.loss.d_loss(real_logits, fake_logits)
        return LossOut(loss, self.loss.d_stats(loss, real_logits, fake_logits), fake if fake.requires_grad else None)

    def g_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        fake = carry if carry is not None else self.G(batch["input"])
        content = self.content(fake, batch["target"])
        adversarial = self.loss.g_loss(self.D(fake))
        loss = content + self.adversarial_weight * adversarial
        return LossOut(loss, {"loss/G": loss.detach(), "loss/G_content": content.detach(),
                              "loss/G_adv": adversarial.detach()})


def init_weights(path: str | Path, G: nn.Module) -> dict[str, torch.Tensor]:
    """The generator weights of an SRResNet/SRGAN run or checkpoint (its averaged G when it kept one),
    checked to fit ``G``; errors name ``model.init``."""
    try:
        state = checkpoint.load(path)
    except CheckpointError as err:
        raise ConfigError(f"model.init={path}: {err}") from None
    target = str(state.get("config", {}).get("model", {}).get("_target_", "?"))
    if target.rsplit(".", 1)[-1] not in (SRResNet.__name__, SRGAN.__name__):
        raise ConfigError(f"model.init={path} is a {target} run; it must be an SRResNet (or SRGAN) run or checkpoint")
    weights = state["models"].get("G_ema") or state["models"]["G"]
    own = G.state_dict()
    wrong = [k for k in own if k not in weights or weights[k].shape != own[k].shape]
    if wrong or len(weights) != len(own):
        raise ConfigError(f"model.init={path}: its generator does not fit this one (first mismatch: "
                          f"{(wrong or sorted(set(weights) - set(own)))[0]}); use the same model.generator settings")
    return weights
