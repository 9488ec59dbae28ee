"""Discriminator layers that look across the batch, so a collapsed generator is easy to spot.

- Minibatch discrimination (Salimans et al. 2016, "Improved Techniques for Training GANs",
  §3.2): the features f(x_i) in R^A are multiplied by a tensor T in R^{A x B x C} into rows
  M_i in R^{B x C}; o(x_i)_b = sum_j exp(-||M_{i,b} - M_{j,b}||_1) over the batch (the
  sample itself included, as in openai/improved-gan) is appended to f(x_i). B = 100
  kernels of C = 5 dimensions, T ~ N(0, 0.05^2), as in that code.
- Minibatch standard deviation (Karras et al. 2018, §3): the standard deviation of each
  feature over a group, averaged into one value appended to every sample of the group
  (``gan_lab.models.blocks.MinibatchStddev``; Progressive GAN has it built in).

Both are inserted between the discriminator's features and its final linear map.
"""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.models.blocks import MinibatchStddev, check_stddev_group
from gan_lab.tricks.base import Trick, extend_head, feature_discriminator, positive


class MinibatchDiscriminationLayer(nn.Module):
    """(B, A) features -> (B, A + kernels): the features and their closeness to the rest of the batch."""

    def __init__(self, in_features: int, kernels: int = 100, kernel_dim: int = 5, init_std: float = 0.05):
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim) * init_std)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        M = (f @ self.T).view(len(f), self.kernels, self.kernel_dim).transpose(0, 1)  # (kernels, B, dim)
        l1 = torch.cdist(M, M, p=1)  # (kernels, B, B): ||M_i,b - M_j,b||_1, 5x faster than broadcasting
        return torch.cat([f, torch.exp(-l1).sum(2).T], 1)


class MinibatchDiscrimination(Trick):
    def __init__(self, kernels: int = 100, kernel_dim: int = 5):
        self.kernels = int(positive(kernels, "tricks.minibatch_discrimination.kernels"))
        self.kernel_dim = int(positive(kernel_dim, "tricks.minibatch_discrimination.kernel_dim"))

    def modify(self, task: nn.Module) -> None:
        D = feature_discriminator(task, "minibatch_discrimination")
        width = _head_inputs(D)
        extend_head(D, MinibatchDiscriminationLayer(width, self.kernels, self.kernel_dim), self.kernels)


class MinibatchStddevTrick(Trick):
    """``group_size`` must divide the batch size (checked at start: the config passes it)."""

    def __init__(self, group_size: int = 4, batch_size: int | None = None):
        self.group_size = check_stddev_group(group_size, batch_size, "tricks.minibatch_stddev.group_size")

    def modify(self, task: nn.Module) -> None:
        extend_head(feature_discriminator(task, "minibatch_stddev"), MinibatchStddev(self.group_size), 1)


def _head_inputs(D: nn.Module) -> int:
    """Width of the features entering D's final linear map (after layers inserted earlier)."""
    return (D.head[-1] if isinstance(D.head, nn.Sequential) else D.head).in_features
