"""StackGAN of Zhang et al. 2017, "StackGAN: Text to Photo-realistic Image Synthesis with Stacked Generative
Adversarial Networks" (ICCV, arXiv 1612.03242).

§3.2 conditioning augmentation: G is conditioned on c ~ N(mu(phi_t), Sigma(phi_t)), a fully connected layer of
the text embedding phi_t giving mu and the diagonal Sigma, and G's loss adds lambda KL(N(mu, Sigma) || N(0, I))
(:class:`gan_lab.models.text.ConditioningAugmentation`; the paper's lambda = 1 as recalled, not verified
against the PDF; both reference codes weigh the KL averaged over the dimensions by 2: ``model.kl_weight=2
model.kl_reduce=mean``, and put a ReLU (PyTorch) or LeakyReLU (TF) after the layer: ``ca_act``).
§3.3 Stage I: c (Ng = 128) concatenated with z (Nz = 100), a fully connected layer to 4x4 and up-sampling
blocks (nearest x2, 3x3 convolution, batch norm, ReLU) to the low resolution (64 px). Its D compresses phi_t to
Nd = 128 with a fully connected layer, replicates it over the Md x Md = 4x4 image features and scores them
(matching-aware, as GAN-CLS: :class:`gan_lab.models.text.TextToImageTask`).
§3.4 Stage II: the Stage-I image (G0 frozen) is encoded down to Mg x Mg = 16x16 (at 256 px), joined with its
own conditioning augmentation's c replicated spatially, residual blocks, then up-sampling blocks to 4x the side
(256 px). "This stage does not use the random noise": its only randomness is in the Stage-I image and its CA.
Its D is deeper (down to 4x4 from 256 px) and, as StackGAN-Pytorch's Stage-II D, also has an unconditional
logit (``model.stage2_discriminator.uncond``; not in the paper), which changes D's loss to
``(real + real_u) / 2 + (fake + wrong + fake_u) / 3`` and adds the unconditional term to G's.

Stages here: ``model=stackgan`` trains Stage I on the dataset's images downsampled ``model.upscale`` = 4 times
(``dataset.image_size`` is the Stage-II side); ``model=stackgan model.stage=2 model.stage1=<Stage-I run>``
trains Stage II on the full images with the Stage-I generator (its EMA copy when the run kept one) loaded,
frozen and in eval mode, outside the optimizer. It is part of the task's state, so a Stage-II checkpoint
samples and evaluates both stages by itself (resuming its training reads ``model.stage1`` again). Reference departures kept out: the 3x3 convolutions of the residual blocks pad
by reflection (``blocks.ResnetBlock``) where the code pads with zeros; D conditions on the raw embedding
through its own layer (the paper, the TF code) where StackGAN-Pytorch feeds D the Stage-I mu.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from gan_lab.engine import checkpoint
from gan_lab.errors import CheckpointError, ConfigError
from gan_lab.models.base import Grid
from gan_lab.models.blocks import ResnetBlock, conv_block, dcgan_init
from gan_lab.models.text import ConditioningAugmentation, TextToImageTask, downsample, kl_to_standard_normal


def up_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """Nearest-neighbour x2, 3x3 convolution, batch norm, ReLU (§3.5: up-sampling blocks)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                         *conv_block(in_ch, out_ch, kernel=3, stride=1, padding=1, act="relu"))


def _power_of_two(value: int, key: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or value & (value - 1):
        raise ConfigError(f"{key}={value!r} must be a power of two >= {low}")
    return value


class StageIGenerator(nn.Module):
    """(z (B, z_dim), text (B, text_dim), eps (B, c_dim)) -> images (B, channels, S, S) in [-1, 1].

    c from conditioning augmentation (``eps`` its standard normal draw), concatenated with z, a linear layer
    to ``8 * width`` maps of 4x4, up-sampling blocks halving the channels up to ``image_size``, a 3x3
    convolution and tanh (StackGAN-Pytorch ``STAGE1_G``; the paper's 64 px G is width 128)."""

    def __init__(self, text_dim: int, image_size: int = 64, channels: int = 3, z_dim: int = 100, c_dim: int = 128,
                 width: int = 128, ca_act: str | None = None, ca: bool = True):
        super().__init__()
        ups = int(math.log2(_power_of_two(image_size, "Stage-I image size (dataset.image_size / model.upscale)", 8))) - 2
        self.z_dim, self.c_dim = z_dim, c_dim
        self.ca = ConditioningAugmentation(text_dim, c_dim, ca_act, ca)
        ch = [8 * width // 2**i for i in range(ups + 1)]
        self.fc = nn.Sequential(nn.Linear(z_dim + c_dim, ch[0] * 16, bias=False), nn.BatchNorm1d(ch[0] * 16),
                                nn.ReLU(inplace=True), nn.Unflatten(1, (ch[0], 4, 4)))
        self.up = nn.Sequential(*(up_block(a, b) for a, b in zip(ch, ch[1:])))
        self.to_image = nn.Sequential(nn.Conv2d(ch[-1], channels, 3, 1, 1), nn.Tanh())
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, text: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        c, _, _ = self.ca(text, eps)
        return self.to_image(self.up(self.fc(torch.cat([z, c], 1))))


class StageIIGenerator(nn.Module):
    """(Stage-I images (B, channels, in_size, in_size), text, eps (B, c_dim)) -> (B, channels, S, S): no z.

    Encoder: 3x3 convolution to ``width`` and ReLU, two 4x4 stride-2 blocks (batch norm, ReLU) to ``4 * width``
    maps of in_size / 4; its own conditioning augmentation's c replicated and concatenated, a 3x3 block back to
    ``4 * width``, ``res_blocks`` residual blocks (each followed by ReLU), up-sampling blocks halving the
    channels up to ``image_size``, a 3x3 convolution and tanh (StackGAN-Pytorch ``STAGE2_G``)."""

    def __init__(self, text_dim: int, in_size: int = 64, image_size: int = 256, channels: int = 3,
                 c_dim: int = 128, width: int = 128, res_blocks: int = 4, ca_act: str | None = None, ca: bool = True):
        super().__init__()
        if in_size < 4 or in_size % 4:
            raise ConfigError(f"Stage-I size {in_size}: Stage II encodes it down by 4")
        ups = int(math.log2(image_size // (in_size // 4)))
        self.ca = ConditioningAugmentation(text_dim, c_dim, ca_act, ca)
        self.encode = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1), nn.ReLU(inplace=True),
                                    conv_block(width, 2 * width, act="relu"), conv_block(2 * width, 4 * width, act="relu"))
        joint = [conv_block(4 * width + c_dim, 4 * width, kernel=3, stride=1, padding=1, act="relu")]
        for _ in range(res_blocks):
            joint += [ResnetBlock(4 * width, norm="batch"), nn.ReLU(inplace=True)]
        self.joint = nn.Sequential(*joint)
        ch = [max(1, 4 * width // 2**i) for i in range(ups + 1)]
        self.up = nn.Sequential(*(up_block(a, b) for a, b in zip(ch, ch[1:])))
        self.to_image = nn.Sequential(nn.Conv2d(ch[-1], channels, 3, 1, 1), nn.Tanh())
        self.apply(dcgan_init)

    def forward(self, low: torch.Tensor, text: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        c, _, _ = self.ca(text, eps)
        h = self.encode(low)
        h = self.joint(torch.cat([h, c[:, :, None, None].expand(-1, -1, *h.shape[2:])], 1))
        return self.to_image(self.up(h))


class StackGANTask(TextToImageTask):
    """Stage I (``stage=1``) or Stage II on a frozen Stage I (``stage=2``); see the module docstring.

    The network arguments are partial constructors (``_partial_: true``): the task gives them their sizes and
    builds only its stage's networks. ``image_size`` is the dataset's (Stage II's) side, Stage I draws
    ``image_size / upscale``."""

    def __init__(self, generator: Callable[..., StageIGenerator], discriminator: Callable[..., nn.Module],
                 loss: nn.Module, image_size: int, stage: int = 1, stage1: str | None = None,
                 stage2_generator: Callable[..., StageIIGenerator] | None = None,
                 stage2_discriminator: Callable[..., nn.Module] | None = None, upscale: int = 4,
                 kl_weight: float = 1.0, kl_reduce: str = "sum", cls_weight: float = 0.5):
        if stage not in (1, 2):
            raise ConfigError(f"model.stage={stage!r}: 1 (Stage I) or 2 (Stage II on model.stage1=<Stage-I run>)")
        _power_of_two(upscale, "model.upscale", 2)
        if image_size % upscale:
            raise ConfigError(f"dataset.image_size={image_size} is not a multiple of model.upscale={upscale}")
        if isinstance(kl_weight, bool) or not isinstance(kl_weight, (int, float)) or kl_weight < 0:
            raise ConfigError(f"model.kl_weight={kl_weight!r} must be a number >= 0")
        low = image_size // upscale
        first = generator(image_size=low)
        if stage == 1:
            super().__init__(first, discriminator(image_size=low), loss, cls_weight)
            self.stage1 = None
        else:
            super().__init__(stage2_generator(in_size=low, image_size=image_size),
                             stage2_discriminator(image_size=image_size), loss, cls_weight)
            self.stage1 = first.requires_grad_(False).eval()  # frozen: no player, in no optimizer
        self.stage, self.stage1_path, self.low = stage, stage1, low
        self.kl_weight, self.kl_reduce = float(kl_weight), kl_reduce
        kl_to_standard_normal(torch.zeros(1, 1), torch.zeros(1, 1), kl_reduce)  # a bad kl_reduce fails here
        self.z_dim, self.c_dim = first.z_dim, first.c_dim

    def train(self, mode: bool = True) -> "StackGANTask":
        super().train(mode)
        if self.stage1 is not None:
            self.stage1.eval()  # batch norm keeps Stage I's running statistics
        return self

    def use_data(self, data) -> None:
        if self.stage == 2:
            self.load_stage1(self.stage1_path)

    def load_stage1(self, path: str | None) -> None:
        """The Stage-I generator (with its CA) of a Stage-I run or checkpoint, read with weights_only=True."""
        if not path:
            raise ConfigError("model.stage=2 trains Stage II on a trained Stage I: give model.stage1=<run dir or "
                              "checkpoint of a model=stackgan run>")
        try:
            state = checkpoint.load(path)
        except CheckpointError as err:
            raise ConfigError(f"model.stage1={path}: {err}") from None
        model = state["config"].get("model", {})
        if model.get("_target_") != f"{__name__}.{StackGANTask.__name__}" or model.get("stage") != 1:
            raise ConfigError(f"model.stage1={path} is not a StackGAN Stage-I run (its model is "
                              f"{model.get('_target_')!r}, stage {model.get('stage')!r})")
        weights = state["models"].get("G_ema", state["models"]["G"])
        try:
            self.stage1.load_state_dict(weights)
        except RuntimeError as err:
            raise ConfigError(f"model.stage1={path}: its generator does not fit this run's model.generator "
                              f"({str(err).splitlines()[0]}); use the Stage-I run's model.generator and "
                              "dataset settings") from None

    def as_output(self, real: torch.Tensor) -> torch.Tensor:
        return downsample(real, self.low) if self.stage == 1 else real

    def draw_latents(self, n: int) -> dict[str, torch.Tensor]:
        """z and Stage I's CA draw (Stage II: also its own CA draw, no new z)."""
        def normal(dim: int) -> torch.Tensor:
            return self.draw_rows(torch.randn, n, dim)

        latents = {"z": normal(self.z_dim), "eps": normal(self.c_dim)}
        if self.stage == 2:
            latents["eps2"] = normal(self.G.ca.c_dim)
        return latents

    def low_resolution(self, inputs: dict[str, torch.Tensor], G: nn.Module | None = None) -> torch.Tensor:
        """Stage I's images for ``inputs`` (Stage II: from the frozen Stage I, without a graph)."""
        if self.stage == 1:
            return G(inputs["z"], inputs["text"], inputs["eps"])
        with torch.no_grad():
            return self.stage1(inputs["z"], inputs["text"], inputs["eps"])

    def generate(self, G: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        low = self.low_resolution(inputs, G)
        return low if self.stage == 1 else G(low, inputs["text"], inputs["eps2"])

    def g_terms(self, batch: dict[str, torch.Tensor], inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """lambda KL of the trained generator's conditioning augmentation (none when CA is off)."""
        ca = self.G.ca
        if not ca.enabled:
            return {}
        _, mu, logvar = ca(inputs["text"], inputs["eps2" if self.stage == 2 else "eps"])
        return {"G_KL": self.kl_weight * kl_to_standard_normal(mu, logvar, self.kl_reduce)}

    def visuals(self, fixed: dict[str, torch.Tensor], G: nn.Module) -> dict[str, Grid]:
        """Stage I: captions x noise. Stage II: each row of Stage-I images (enlarged) above its Stage-II row."""
        out = self.generate(G, fixed)
        columns = self.grid_columns(len(out))
        if self.stage == 1:
            return {"fixed": Grid(out, columns)}
        low = nn.functional.interpolate(self.low_resolution(fixed), size=out.shape[-2:], mode="nearest")
        rows = torch.stack([low.unflatten(0, (-1, columns)), out.unflatten(0, (-1, columns))], 1)
        return {"fixed": Grid(rows.flatten(0, 2), columns)}
