"""Mode coverage on 2-D Gaussian mixtures (Srivastava et al. 2017, "VEEGAN", §5.1; the ring and grid
of Metz et al. 2017, "Unrolled GANs", and VEEGAN).

VEEGAN's two numbers: a sample is *high quality* if it lies within 3 standard deviations of its nearest
mode centre; a mode is *captured* if it is the nearest mode of at least one high-quality sample. With
few samples per mode a single stray point counts, so ``min_count`` can demand more (e.g. a share of
the samples one mode would get under a uniform mixture).
"""

from __future__ import annotations

import torch


def mode_coverage(samples: torch.Tensor, modes: torch.Tensor, std: float,
                  min_count: int = 1) -> tuple[int, float]:
    """(modes captured, fraction of high-quality samples) for samples (N, 2) and mode centres (K, 2)."""
    samples = samples.to(modes.device, modes.dtype)
    distance, nearest = torch.cdist(samples, modes).min(dim=1)
    high_quality = distance <= 3 * std
    counts = torch.bincount(nearest[high_quality], minlength=len(modes))
    return int((counts >= min_count).sum()), float(high_quality.float().mean())
