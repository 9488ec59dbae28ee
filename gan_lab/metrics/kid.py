"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs", §3 and Appendix).

The unbiased estimate of MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged
over random subsets of both feature sets; unlike FID it has an unbiased estimator, so it can be
slightly negative when the two sets come from one distribution. Matches torch-fidelity's
``kid_features_to_metric`` (itself from the MMD-GAN code): the same defaults (100 subsets of 1000),
the same subsets for a given seed (np.random.RandomState(seed).choice without replacement, drawn
alternately for the two sets), and the population std over subsets. Kernel sums are float64.
"""

from __future__ import annotations

import numpy as np
import torch

from gan_lab.metrics.evaluate import FeatureMetric

# Up to this many kernel entries (16M float64 = 128 MB) the full kernel matrices are computed once and
# every subset indexes into them; beyond it each subset computes its own blocks.
_FULL_KERNEL_MAX = 1 << 24


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """k(x, y) = (x.y / d + 1)^3 for every pair of rows."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def _kernel_blocks(x: torch.Tensor, y: torch.Tensor):
    """A function (rows, cols) -> k(x[rows], y[cols]), reusing one full kernel matrix when it is small."""
    if len(x) * len(y) <= _FULL_KERNEL_MAX:
        full = polynomial_kernel(x, y)
        return lambda rows, cols: full[rows][:, cols]
    return lambda rows, cols: polynomial_kernel(x[rows], y[cols])


def mmd2_unbiased(k_xx: torch.Tensor, k_xy: torch.Tensor, k_yy: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 from m x m kernel blocks: diagonals of k_xx and k_yy are left out."""
    m = k_xx.shape[0]
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return within - 2 * k_xy.sum() / (m * m)


def kernel_inception_distance(features1: torch.Tensor, features2: torch.Tensor, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 2020) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over ``subsets`` random subsets of ``subset_size`` per set."""
    n1, n2 = len(features1), len(features2)
    if min(n1, n2) < subset_size:
        raise ValueError(f"KID subset_size={subset_size} is larger than a feature set ({n1} and {n2} samples); "
                         f"lower subset_size or use more samples")
    x, y = features1.to(torch.float64), features2.to(features1.device, torch.float64)
    k_xx, k_xy, k_yy = _kernel_blocks(x, x), _kernel_blocks(x, y), _kernel_blocks(y, y)
    # NumPy's RandomState, not a torch.Generator, so that a seed picks torch-fidelity's exact subsets.
    rng = np.random.RandomState(seed)
    mmds = []
    for _ in range(subsets):
        i = torch.from_numpy(rng.choice(n1, subset_size, replace=False)).to(x.device)
        j = torch.from_numpy(rng.choice(n2, subset_size, replace=False)).to(x.device)
        mmds.append(mmd2_unbiased(k_xx(i, i), k_xy(i, j), k_yy(j, j)))
    mmds = torch.stack(mmds)
    return float(mmds.mean()), float(mmds.std(correction=0))


class KID(FeatureMetric):
    """``KID`` and ``KID std``; subsets of ``subset_size`` (torch-fidelity's 1000), fewer when a set is smaller."""

    def __init__(self, subset_size: int = 1000, subsets: int = 100):
        self.subset_size, self.subsets = subset_size, subsets

    def measure(self, pool, logits, real):
        size = min(self.subset_size, len(real), len(pool))
        mean, std = kernel_inception_distance(real, pool, subsets=self.subsets, subset_size=size)
        return {"KID": mean, "KID std": std}
