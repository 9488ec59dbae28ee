"""2-D mixtures of Gaussians, the standard mode-collapse probes.

``ring``: 8 modes evenly spaced on a circle of radius 2, std 0.02 (Metz et al.
2017, "Unrolled Generative Adversarial Networks", §3.1). ``grid``: 25 modes at
{-4, -2, 0, 2, 4}^2, std 0.05 (Srivastava et al. 2017, "VEEGAN", §5.1). The mode
centres (``modes``) and ``std`` are exposed for the mode-coverage metrics
("high-quality" samples lie within 3 std of a mode).
"""

from __future__ import annotations

import math

import torch

from gan_lab.data.base import TensorDataset, check_choice, check_int

MIXTURES = ("ring", "grid")


def mixture_modes(mixture: str) -> tuple[torch.Tensor, float]:
    """(K, 2) mode centres and the per-axis standard deviation of one named mixture."""
    if mixture == "ring":
        theta = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return (2 * torch.stack([theta.cos(), theta.sin()], 1)).float(), 0.02
    axis = torch.arange(-4.0, 5.0, 2.0)
    gx, gy = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], 1), 0.05


class Toy2D(TensorDataset):
    """``real`` float32 (count, 2) points and ``label`` = index of the mode each was drawn from."""

    kind = "points"

    def __init__(self, mixture: str = "ring", count: int = 65536, dim: int = 2, seed: int = 0):
        check_choice("mixture", mixture, MIXTURES)
        check_choice("dim", dim, (2,))
        check_int("count", count)
        self.seed = check_int("seed", seed, low=0)
        self.mixture, self.dim = mixture, dim
        self.modes, self.std = mixture_modes(mixture)
        gen = torch.Generator().manual_seed(seed)
        label = torch.randint(len(self.modes), (count,), generator=gen)
        points = self.modes[label] + self.std * torch.randn(count, dim, generator=gen)
        super().__init__({"real": points, "label": label}, len(self.modes))
