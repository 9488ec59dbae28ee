"""Fréchet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule
Converge to a Local Nash Equilibrium", §3 and the TTUR reference code).

FID = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)). The trace term is the sum of the
singular values of S1^(1/2) S2^(1/2), whose squares are the eigenvalues of S1 S2. pytorch-fid
(scipy.linalg.sqrtm of S1 S2, retried with eps*I) and torch-fidelity (sqrt of np.linalg.eigvals(S1 S2))
take square roots of that product's eigenvalues, so the rounding noise of the ~2048 - N zero
eigenvalues of singular covariances (fewer samples than dimensions) enters as sqrt(noise), about 1e-5
each. Here it does not (FID(x, x) is 0 to ~1e-10 for 100 samples of 2048-d features), no complex
values arise, and the results agree with both to ~1e-7 relative. All float64.
"""

from __future__ import annotations

import torch

from gan_lab.metrics.evaluate import FeatureMetric


class FeatureStats:
    """Streaming mean and covariance of feature batches, in float64.

    Keeps only sums (D and D x D values), so any number of samples fits in memory. Sums are taken
    around the first batch's mean: the shift removes the cancellation of E[xx^T] - mu mu^T when
    the features' mean is large compared with their spread.
    """

    def __init__(self) -> None:
        self.count = 0
        self._shift = self._sum = self._outer = None

    def update(self, features: torch.Tensor) -> None:
        x = features.detach().to(torch.float64).flatten(1)
        if self._shift is None:
            self._shift = x.mean(0)
            self._sum = torch.zeros_like(self._shift)
            self._outer = x.new_zeros(x.shape[1], x.shape[1])
        x = x - self._shift
        self.count += x.shape[0]
        self._sum += x.sum(0)
        self._outer += x.T @ x

    def mean_cov(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (D,) and unbiased covariance (D, D), like np.mean and np.cov(rowvar=False)."""
        if self.count < 2:
            raise ValueError(f"FID needs at least 2 samples, got {self.count}")
        centred_sum = self._sum / self.count
        cov = (self._outer - self.count * torch.outer(centred_sum, centred_sum)) / (self.count - 1)
        return self._shift + centred_sum, cov


def feature_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of a (N, D) feature matrix."""
    stats = FeatureStats()
    stats.update(features)
    return stats.mean_cov()


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix; rounding's negative eigenvalues -> 0."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)  # eigh reads one triangle only
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); tensors or arrays, computed in float64."""
    mu1, sigma1, mu2, sigma2 = (torch.as_tensor(a, dtype=torch.float64) for a in (mu1, sigma1, mu2, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched statistics: mu {tuple(mu1.shape)}/{tuple(mu2.shape)}, "
                         f"sigma {tuple(sigma1.shape)}/{tuple(sigma2.shape)}")
    # Singular values of the product of the two PSD square roots: sqrt(eig(S1 S2)), noise kept linear.
    tr_covmean = torch.linalg.svdvals(_psd_sqrt(sigma1) @ _psd_sqrt(sigma2)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + sigma1.trace() + sigma2.trace() - 2 * tr_covmean)


def fid_from_features(features1: torch.Tensor, features2: torch.Tensor) -> float:
    """FID between two (N, D) feature sets (Inception pool features for the standard FID)."""
    return frechet_distance(*feature_stats(features1), *feature_stats(features2))


class FID(FeatureMetric):
    """``FID`` of a set's outputs against its real images."""

    def measure(self, pool, logits, real):
        return {"FID": fid_from_features(real, pool)}
