"""Mode coverage on 2-D Gaussian mixtures (Srivastava et al. 2017, "VEEGAN", §5.1; the ring and grid
of Metz et al. 2017, "Unrolled GANs", and VEEGAN).

VEEGAN's two numbers: a sample is *high quality* if it lies within 3 standard deviations of its nearest
mode centre; a mode is *captured* if it is the nearest mode of at least one high-quality sample. With
few samples per mode a single stray point counts, so ``min_count`` can demand more (e.g. a share of
the samples one mode would get under a uniform mixture).
"""

from __future__ import annotations

import torch

from gan_lab.data.toy2d import Toy2D
from gan_lab.metrics.evaluate import Metric


def mode_coverage(samples: torch.Tensor, modes: torch.Tensor, std: float,
                  min_count: int = 1) -> tuple[int, float]:
    """(modes captured, fraction of high-quality samples) for samples (N, 2) and mode centres (K, 2)."""
    samples = samples.to(modes.device, modes.dtype)
    distance, nearest = torch.cdist(samples, modes).min(dim=1)
    high_quality = distance <= 3 * std
    counts = torch.bincount(nearest[high_quality], minlength=len(modes))
    return int((counts >= min_count).sum()), float(high_quality.float().mean())


class ModeCoverage(Metric):
    """``modes covered`` ("k/K") and ``high-quality fraction`` of samples of a :class:`Toy2D` mixture."""

    def __init__(self, min_count: int = 1):
        self.min_count = min_count

    def applies(self, ev, s) -> bool:
        return isinstance(ev.data, Toy2D) and s.given is None

    def __call__(self, ev, s) -> dict[str, float | str]:
        covered, high_quality = mode_coverage(ev.outputs(s).fake, ev.data.modes, ev.data.std, self.min_count)
        return {"modes covered": f"{covered}/{len(ev.data.modes)}", "high-quality fraction": high_quality}
