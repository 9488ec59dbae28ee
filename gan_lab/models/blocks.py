"""Building blocks shared by every network, so no model file repeats a layer recipe.

Conventions: convolution blocks are ``conv -> BatchNorm -> activation -> dropout``
(the DCGAN / pix2pix layer "Ck"; layer norm or no norm on request); fully connected
layers put dropout on their *input*, as pylearn2 (the code of Goodfellow et al. 2014
and Mirza & Osindero 2014) did. Activations are in place where the tensor they
overwrite is not needed again.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import ConfigError

_ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "lrelu": lambda: nn.LeakyReLU(0.2, inplace=True),  # slope 0.2: Radford et al. 2015 §3, Isola et al. 2017 §6.1
    "tanh": nn.Tanh,
    "elu": lambda: nn.ELU(inplace=True),  # Clevert et al. 2016; BEGAN's convolutions (Berthelot et al. 2017)
}


def activation(name: str | None) -> list[nn.Module]:
    """``[]`` for ``None``, else the named activation as a one-element list."""
    return [] if name is None else [_ACTIVATIONS[name]()]


_NORMS = {
    "batch": nn.BatchNorm2d,
    # Layer norm of a feature map: statistics over (C, H, W) of each sample, a scale and shift per
    # channel, as in the code of Gulrajani et al. 2017 (tflib/ops/layernorm.py, axes [1, 2, 3]).
    "layer": lambda channels: nn.GroupNorm(1, channels),
    # Instance norm: statistics over (H, W) of each sample and channel, the same in train and eval
    # (no running statistics). Without scale and shift, as CycleGAN's code (Zhu et al. 2017, networks.py
    # ``get_norm_layer``, track_running_stats=False since its issue #395); with them as DualGAN's code,
    # whose "batch_norm" takes per-sample moments and learns a scale and centre (Yi et al. 2017, ops.py).
    "instance": lambda channels: nn.InstanceNorm2d(channels, affine=False),
    "instance_affine": lambda channels: nn.InstanceNorm2d(channels, affine=True),
}
NORMS = (*_NORMS, "none")  # the values of a network's ``norm`` option


def conv_block(in_ch: int, out_ch: int, *, transpose: bool = False, kernel: int = 4, stride: int = 2,
               padding: int = 1, norm: str | None = "batch", act: str | None = None,
               dropout: float = 0.0) -> nn.Sequential:
    """(Transposed) convolution, normalization, activation and dropout.

    ``norm`` is ``"batch"``, ``"layer"``, or ``"none"``/``None`` (or ``False``) for none. The defaults
    (4x4, stride 2, padding 1) halve or double the resolution. The convolution has no bias when
    a normalization follows: its shift makes the bias redundant."""
    norm = None if not norm or norm == "none" else norm
    conv = nn.ConvTranspose2d if transpose else nn.Conv2d
    layers = [conv(in_ch, out_ch, kernel, stride, padding, bias=norm is None)]
    if norm is not None:
        layers.append(_NORMS[norm](out_ch))
    layers += activation(act)
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def norm_layer(norm: str | None, channels: int) -> nn.Module:
    """The named normalization of ``channels`` feature maps (one of ``NORMS``), ``nn.Identity`` for none."""
    if not norm or norm == "none":
        return nn.Identity()
    if norm not in _NORMS:
        raise ConfigError(f"norm={norm!r}: choose one of {', '.join(NORMS)}")
    return _NORMS[norm](channels)


def reflect_conv(in_ch: int, out_ch: int, kernel: int, *, norm: str | None = "instance",
                 act: str | None = "relu") -> nn.Sequential:
    """Reflection padding by ``kernel // 2``, a stride-1 convolution (size kept), norm and activation:
    CycleGAN's ``c7s1-k`` layer (Zhu et al. 2017, §7.2). Reflection instead of zero padding avoids
    border artifacts. Bias only without a norm (the norm's centring cancels it)."""
    norm = None if not norm or norm == "none" else norm
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_ch, out_ch, kernel, bias=norm is None),
                         *([] if norm is None else [norm_layer(norm, out_ch)]), *activation(act))


class ResnetBlock(nn.Module):
    """``x + F(x)`` with F = reflect-pad, conv3x3, norm, ReLU, reflect-pad, conv3x3, norm and no ReLU after
    the sum: CycleGAN's ``R256`` (Zhu et al. 2017, §7.2, after Johnson et al. 2016; its code's
    ``ResnetBlock`` with dropout off). The size and channels are kept."""

    def __init__(self, channels: int, norm: str | None = "instance"):
        super().__init__()
        self.body = nn.Sequential(reflect_conv(channels, channels, 3, norm=norm, act="relu"),
                                  reflect_conv(channels, channels, 3, norm=norm, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def dense(in_features: int, out_features: int, *, act: str | None = None, input_dropout: float = 0.0) -> nn.Sequential:
    """Dropout on the input, a linear map, an activation."""
    layers = [nn.Dropout(input_dropout)] if input_dropout else []
    return nn.Sequential(*layers, nn.Linear(in_features, out_features), *activation(act))


class Maxout(nn.Module):
    """Maxout units (Goodfellow et al. 2013): each unit is the max of ``pieces`` affine maps."""

    def __init__(self, in_features: int, units: int, pieces: int, input_dropout: float = 0.0):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.dropout = nn.Dropout(input_dropout) if input_dropout else nn.Identity()
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(self.dropout(x))
        return h.view(*h.shape[:-1], self.units, self.pieces).amax(-1)


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices as float one-hot rows (Mirza & Osindero 2014 §4.1 feed labels this way)."""
    return F.one_hot(labels, num_classes).float()


def numel(shape) -> int:
    """Number of values in one sample of ``shape`` (a list from the config)."""
    return math.prod(int(s) for s in shape)


@torch.no_grad()
def dcgan_init(module: nn.Module) -> None:
    """N(0, 0.02) weights, zero biases, BatchNorm scales N(1, 0.02) (Radford et al. 2015 §4).

    Use as ``net.apply(dcgan_init)``; pix2pix (Isola et al. 2017 §6.2) uses the same."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
    else:
        return
    if module.bias is not None:
        nn.init.zeros_(module.bias)


@torch.no_grad()
def uniform_init(net: nn.Module, bound: float) -> None:
    """Linear weights U(-bound, bound), zero biases: pylearn2's ``irange`` used by the
    reference MLP GANs (goodfeli/adversarial ``mnist.yaml``: .05 for G, .005 for D)."""
    for module in net.modules():
        if isinstance(module, nn.Linear):
            nn.init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:  # none before a batch norm
                nn.init.zeros_(module.bias)


class SelfAttention(nn.Module):
    """Self-attention over the positions of a feature map (Zhang et al. 2019, "Self-Attention GANs", §3).

    With 1x1 convolutions f, g, h (``channels // 8`` outputs each, §3: C/8) and v (back to ``channels``),
    at every position j: ``o_j = v(sum_i beta_ji h(x_i))``, ``beta_ji = softmax_i(f(x_i) . g(x_j))``, and
    ``y = gamma * o + x``. g(x_j) is the query, f(x_i) the key, h(x_i) the value. ``gamma`` starts at 0,
    so the block starts as the identity: the network first relies on local cues and gradually learns
    to weigh non-local evidence (§3). Like the paper's W matrices, the
    convolutions have no bias."""

    def __init__(self, channels: int):
        super().__init__()
        if channels < 8:
            raise ValueError(f"self-attention needs at least 8 channels (queries and keys have channels / 8), "
                             f"got {channels}")
        inner = channels // 8
        self.f, self.g, self.h = (nn.Conv2d(channels, inner, 1, bias=False) for _ in range(3))
        self.v = nn.Conv2d(inner, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, height, width = x.shape
        query, key, value = (conv(x).flatten(2).transpose(1, 2) for conv in (self.g, self.f, self.h))  # (B, N, C/8)
        # scale=1: the paper's logits are plain dot products, without the 1/sqrt(d) of Vaswani et al.
        o = F.scaled_dot_product_attention(query, key, value, scale=1.0)
        o = self.v(o.transpose(1, 2).reshape(b, -1, height, width))
        return x + self.gamma * o


def check_stddev_group(group_size: int, batch_size: int | None, key: str) -> int:
    """``group_size`` if it is positive and divides ``batch_size`` (when given and larger), else a
    ConfigError naming ``key``: MinibatchStddev would fail at the first step."""
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ConfigError(f"{key} must be a positive integer, got {group_size!r}")
    if batch_size is not None and batch_size > group_size and batch_size % group_size:
        raise ConfigError(f"{key}={group_size} must divide train.batch_size={batch_size}")
    return group_size


class MinibatchStddev(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018, "Progressive Growing of GANs", §3).

    The standard deviation of each feature (and location) over a group of ``group_size``
    samples, averaged into one value per group, appended to every sample of the group: one
    constant channel for feature maps (B, C, H, W) -> (B, C + 1, H, W), one feature for
    vectors (B, F) -> (B, F + 1). D can then tell a batch of near-duplicates from real data.
    The batch size must be divisible by the group size, or smaller than it (one group)."""

    def __init__(self, group_size: int = 4, eps: float = 1e-8):
        super().__init__()
        self.group_size, self.eps = group_size, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = len(x)
        g = min(self.group_size, b)
        if b % g:
            raise ValueError(f"minibatch stddev: batch size {b} is not divisible by the group size {g}")
        groups = x.view(g, b // g, *x.shape[1:]).float()  # sample i is in group i % (b // g), as in ProGAN
        std = (groups.var(0, unbiased=False) + self.eps).sqrt()  # (b // g, ...)
        stat = std.flatten(1).mean(1).to(x.dtype)  # one value per group
        stat = stat.repeat(g)  # back to (b,), sample i gets its group's value
        shape = (b, 1, *x.shape[2:])
        return torch.cat([x, stat.view(b, *([1] * (x.dim() - 1))).expand(shape)], 1)
