"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs", §4).

IS = exp(E_x KL(p(y|x) || p(y))), computed on ``splits`` consecutive chunks of the samples, reported as
the mean and population std over chunks. p(y|x) is the softmax of the 1008 Inception logits without
the bias, as in the paper's code. Matches torch-fidelity's ``isc_features_to_metric``: float64, the
same chunk bounds (i*N//splits), and by default the same shuffle (np.random.RandomState(2020)
permutation) before chunking; ``shuffle_seed=None`` keeps the given order, as the paper's code does.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gan_lab.metrics.evaluate import FeatureMetric


def inception_score(logits: torch.Tensor, splits: int = 10,
                    shuffle_seed: int | None = 2020) -> tuple[float, float]:
    """(mean, std) of the Inception Score of (N, classes) logits over ``splits`` chunks."""
    n = len(logits)
    if n < splits:
        raise ValueError(f"Inception Score needs at least splits={splits} samples, got {n}")
    if shuffle_seed is not None:
        # NumPy's permutation, not torch's, so that a seed gives torch-fidelity's exact chunks.
        logits = logits[torch.from_numpy(np.random.RandomState(shuffle_seed).permutation(n)).to(logits.device)]
    logits = logits.to(torch.float64)
    p, log_p = logits.softmax(dim=1), logits.log_softmax(dim=1)
    scores = []
    for k in range(splits):
        chunk = slice(k * n // splits, (k + 1) * n // splits)
        # log of the marginal p(y) over the chunk, from the log-probabilities: unlike log(mean(p)),
        # it stays finite when very confident logits underflow p, where torch-fidelity gets NaN or inf.
        log_marginal = log_p[chunk].logsumexp(dim=0) - math.log(len(log_p[chunk]))
        kl = (p[chunk] * (log_p[chunk] - log_marginal)).sum(dim=1)
        scores.append(kl.mean().exp())
    scores = torch.stack(scores)
    return float(scores.mean()), float(scores.std(correction=0))


class InceptionScore(FeatureMetric):
    """``IS`` and ``IS std`` of a set's outputs over ``splits`` chunks."""

    needs_real = False

    def __init__(self, splits: int = 10):
        self.splits = self.min_samples = splits

    def measure(self, pool, logits, real):
        mean, std = inception_score(logits, self.splits)
        return {"IS": mean, "IS std": std}
