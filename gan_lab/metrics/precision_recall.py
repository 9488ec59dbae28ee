"""Improved precision and recall (Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for
Assessing Generative Models", §2).

Each set's manifold is the union of balls around its samples, each with the radius of the distance to
its k-th nearest neighbour in the same set (k = 3 in the paper). Precision: the fraction of generated
samples inside the real manifold; recall: the fraction of real samples inside the generated one.
Matches torch-fidelity's ``prc_features_to_metric`` (same k-th value, inclusive ``<=``); distances
come in row blocks so memory stays O(block x N).
"""

from __future__ import annotations

import torch

from gan_lab.metrics.evaluate import FeatureMetric


def _knn_radii(x: torch.Tensor, k: int, block: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row (the self-distance 0 is the 1st value)."""
    return torch.cat([torch.cdist(rows, x).kthvalue(k + 1, dim=1).values for rows in x.split(block)])


def _inside(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, block: int) -> torch.Tensor:
    """Fraction of queries within radii[j] of some centre j."""
    hits = [(torch.cdist(rows, centres) <= radii).any(dim=1) for rows in queries.split(block)]
    return torch.cat(hits).float().mean()


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3,
                     block: int = 1024) -> tuple[float, float]:
    """(precision, recall) of generated features ``fake`` (N, D) against real features ``real`` (M, D)."""
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set, "
                         f"got {len(real)} real and {len(fake)} generated")
    real, fake = real.float(), fake.to(real.device, torch.float32)
    precision = _inside(fake, real, _knn_radii(real, k, block), block)
    recall = _inside(real, fake, _knn_radii(fake, k, block), block)
    return float(precision), float(recall)


class PrecisionRecall(FeatureMetric):
    """``precision`` and ``recall`` with ``k`` nearest neighbours (the paper's 3)."""

    def __init__(self, k: int = 3):
        self.k, self.min_samples = k, k + 1

    def measure(self, pool, logits, real):
        precision, recall = precision_recall(real, pool, self.k)
        return {"precision": precision, "recall": recall}
